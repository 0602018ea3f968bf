use super::*;

const FK: [u8; FILE_KEY_LEN] = [9; FILE_KEY_LEN];

fn stanza() -> MeshStanza {
    MeshStanza {
        tag: "mesh".into(),
        args: vec!["MTAG".into(), "0".into()],
        // 48 bytes: 64 base64 columns exactly, so the body ends with an empty line.
        body: vec![5; 48],
    }
}

fn seal(plain: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encrypt(&[stanza()], &FK, &mut &plain[..], &mut out).expect("encrypts");
    out
}

fn open(file: &[u8]) -> Result<Vec<u8>, FilesError> {
    let mut input = file;
    let h = read_header(&mut input)?;
    let mut out = Vec::new();
    decrypt(&h, &FK, &mut input, &mut out)?;
    Ok(out)
}

#[test]
fn files_of_every_size_round_trip_with_the_stanzas_intact() {
    for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 2 * CHUNK + 7] {
        let plain: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let file = seal(&plain);
        assert!(file.starts_with(b"age-encryption.org/v1\n-> mesh MTAG 0\n"));
        let chunks = len.div_ceil(CHUNK).max(1);
        let header = read_header(&mut &file[..]).expect("header");
        assert_eq!(header.stanzas, vec![stanza()]);
        assert_eq!(
            file.len(),
            header.mac_input.len() + 45 + 16 + len + chunks * TAG,
            "{len}"
        );
        assert_eq!(open(&file).expect("opens"), plain, "{len}");
    }
}

#[test]
fn a_cut_or_changed_file_is_refused() {
    let plain = vec![1u8; 2 * CHUNK];
    let file = seal(&plain);
    let header_len = read_header(&mut &file[..]).expect("h").mac_input.len() + 45;
    let payload = header_len + 16;
    // Cut at a chunk boundary (the last chunk gone), inside a chunk, in the
    // nonce, in the header.
    for cut in [
        payload + CHUNK + TAG,
        file.len() - 1,
        payload + 3,
        header_len + 4,
        20,
    ] {
        let err = open(&file[..cut]).expect_err("a cut file opens");
        assert!(matches!(err, FilesError::Damaged(_)), "{cut}: {err}");
    }
    // One bit changed in the payload, in a stanza body, in the MAC.
    for at in [payload + 100, 50, header_len - 5] {
        let mut bad = file.clone();
        bad[at] ^= 1;
        let err = open(&bad).expect_err("a changed file opens");
        assert!(matches!(err, FilesError::Damaged(_)), "{at}: {err}");
    }
    // An empty chunk appended after the last one.
    let mut longer = file.clone();
    longer.extend_from_slice(&[0; TAG]);
    assert!(matches!(open(&longer), Err(FilesError::Damaged(_))));
    assert!(FilesError::Damaged(String::new())
        .hint()
        .expect("hint")
        .contains("nothing was written"));
}

#[test]
fn what_is_not_an_age_file_says_so() {
    assert!(matches!(open(b""), Err(FilesError::NotAge)));
    assert!(matches!(open(b"hello\n"), Err(FilesError::NotAge)));
    let armored = b"-----BEGIN AGE ENCRYPTED FILE-----\nYWdl\n";
    assert!(matches!(open(armored), Err(FilesError::Armored)));
    // A header that never ends is bounded.
    let mut endless = MAGIC.to_vec();
    endless.extend(std::iter::repeat_n(b"-> x\n\n".as_slice(), 300_000).flatten());
    assert!(matches!(open(&endless), Err(FilesError::Damaged(_))));
}
