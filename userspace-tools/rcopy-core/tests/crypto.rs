//! CRC-32C, SHA-256 and HMAC-SHA256: published vectors and split invariance.

use proptest::prelude::*;
use rcopy_core::crc32c::{crc32c, Crc32c, POLY};
use rcopy_core::hmac::{ct_eq, hmac_sha256, HmacSha256};
use rcopy_core::sha256::{sha256, Sha256};

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn bitwise_crc(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 { (c >> 1) ^ POLY } else { c >> 1 };
        }
    }
    !c
}

#[test]
fn crc32c_check_value() {
    assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    assert_eq!(crc32c(b""), 0);
}

/// RFC 3720 appendix B.4.
#[test]
fn crc32c_rfc3720() {
    assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
    assert_eq!(crc32c(&[0xffu8; 32]), 0x62A8_AB43);
    let inc: Vec<u8> = (0u8..32).collect();
    assert_eq!(crc32c(&inc), 0x46DD_794E);
    let dec: Vec<u8> = (0u8..32).rev().collect();
    assert_eq!(crc32c(&dec), 0x113F_DB5C);
    // An iSCSI SCSI Read (10) command PDU.
    let pdu = hex("01c00000000000000000000000000000\
                   14000000000004000000001400000018\
                   28000000000000000200000000000000");
    assert_eq!(pdu.len(), 48);
    assert_eq!(crc32c(&pdu), 0xD996_3A56);
}

const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

#[test]
fn sha256_nist() {
    assert_eq!(sha256(b"abc").to_vec(), hex(ABC));
    assert_eq!(sha256(b"").to_vec(), hex(EMPTY));
    assert_eq!(
        sha256(b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq").to_vec(),
        hex("248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
    );
    assert_eq!(
        sha256(
            b"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmn\
              hijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu"
        )
        .to_vec(),
        hex("cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1")
    );
}

#[test]
fn sha256_million_a() {
    let mut h = Sha256::new();
    let chunk = [b'a'; 1000];
    for _ in 0..1000 {
        h.update(&chunk);
    }
    assert_eq!(
        h.finalize().to_vec(),
        hex("cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    );
}

#[test]
fn sha256_padding_boundaries() {
    // Lengths around the 55/56/64-byte padding edges, fed whole and bytewise.
    for n in 50..=130 {
        let data: Vec<u8> = (0..n).map(|i| i as u8).collect();
        let mut h = Sha256::new();
        for b in &data {
            h.update(core::slice::from_ref(b));
        }
        assert_eq!(h.finalize(), sha256(&data), "length {n}");
    }
}

/// RFC 4231, every HMAC-SHA256 test case.
#[test]
fn hmac_rfc4231() {
    let cases: [(Vec<u8>, Vec<u8>, &str); 7] = [
        (
            vec![0x0b; 20],
            b"Hi There".to_vec(),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
        ),
        (
            b"Jefe".to_vec(),
            b"what do ya want for nothing?".to_vec(),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
        ),
        (
            vec![0xaa; 20],
            vec![0xdd; 50],
            "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
        ),
        (
            (1u8..=25).collect(),
            vec![0xcd; 50],
            "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
        ),
        (
            vec![0x0c; 20],
            b"Test With Truncation".to_vec(),
            // Truncated to 128 bits in the RFC.
            "a3b6167473100ee06e0c796c2955552b",
        ),
        (
            vec![0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First".to_vec(),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
        ),
        (
            vec![0xaa; 131],
            b"This is a test using a larger than block-size key and a larger than \
              block-size data. The key needs to be hashed before being used by the \
              HMAC algorithm."
                .to_vec(),
            "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
        ),
    ];
    for (i, (key, data, want)) in cases.iter().enumerate() {
        let want = hex(want);
        let got = hmac_sha256(key, data);
        assert_eq!(&got[..want.len()], &want[..], "RFC 4231 case {}", i + 1);
    }
}

#[test]
fn ct_eq_basics() {
    assert!(ct_eq(b"", b""));
    assert!(ct_eq(b"abc", b"abc"));
    assert!(!ct_eq(b"abc", b"abd"));
    assert!(!ct_eq(b"abc", b"ab"));
    assert!(!ct_eq(&[0x80], &[0x00]));
}

fn split3(len: usize) -> impl Strategy<Value = (usize, usize)> {
    (0..=len, 0..=len).prop_map(|(a, b)| (a.min(b), a.max(b)))
}

proptest! {
    #[test]
    fn crc32c_matches_bitwise_and_splits(data in prop::collection::vec(any::<u8>(), 0..600), s in any::<prop::sample::Index>(), t in any::<prop::sample::Index>()) {
        let (i, j) = {
            let (a, b) = (s.index(data.len() + 1), t.index(data.len() + 1));
            (a.min(b), a.max(b))
        };
        let whole = crc32c(&data);
        prop_assert_eq!(whole, bitwise_crc(&data));
        let mut c = Crc32c::new();
        c.update(&data[..i]).update(&data[i..j]).update(&data[j..]);
        prop_assert_eq!(c.finish(), whole);
    }

    #[test]
    fn sha256_and_hmac_split_invariant(
        (data, (i, j)) in prop::collection::vec(any::<u8>(), 0..400).prop_flat_map(|d| { let n = d.len(); (Just(d), split3(n)) }),
        key in prop::collection::vec(any::<u8>(), 0..150),
    ) {
        let mut h = Sha256::new();
        h.update(&data[..i]).update(&data[i..j]).update(&data[j..]);
        prop_assert_eq!(h.finalize(), sha256(&data));
        let mut m = HmacSha256::new(&key);
        m.update(&data[..i]).update(&data[i..j]).update(&data[j..]);
        prop_assert_eq!(m.finalize(), hmac_sha256(&key, &data));
    }
}
