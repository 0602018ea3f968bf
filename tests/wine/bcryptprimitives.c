/* Wine 8 (Debian bookworm) has no bcryptprimitives.dll, which Rust's
 * standard library for Windows imports for ProcessPrng (its random source).
 * This test-only shim, placed beside the .exe under Wine, answers it from
 * RtlGenRandom (advapi32's SystemFunction036). Windows has the real DLL;
 * nothing here ships. Built by .ci/run with x86_64-w64-mingw32-gcc. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG n = len > 0x10000000 ? 0x10000000 : (ULONG)len;
        if (!SystemFunction036(data, n))
            return FALSE;
        data += n;
        len -= n;
    }
    return TRUE;
}
