/* A stand-in for Gpg4win's gpg.exe in the Wine tests (tests/tests/e2e/
 * wine_gpg.rs): it appends its arguments, one call a line, to gpg-calls.log
 * beside itself, reads its standard input to the end and succeeds. It
 * shows which gpg.exe `mesh pgp install` found and what it asked of it. */
#include <stdio.h>
#include <string.h>
#include <windows.h>

int main(int argc, char **argv)
{
    char path[MAX_PATH + 32];
    char buf[4096];
    char *slash;
    FILE *log;
    int i;

    DWORD n = GetModuleFileNameA(NULL, path, MAX_PATH);
    if (n == 0 || n >= MAX_PATH) return 2;
    slash = strrchr(path, '\\');
    if (!slash) return 2;
    strcpy(slash + 1, "gpg-calls.log");
    log = fopen(path, "a");
    if (!log) return 2;
    for (i = 1; i < argc; i++) fprintf(log, "%s%s", i > 1 ? " " : "", argv[i]);
    fputc('\n', log);
    fclose(log);
    while (fread(buf, 1, sizeof buf, stdin) > 0) {}
    return 0;
}
