//! The SNP ID block (SNP firmware ABI 56860, SNP_LAUNCH_FINISH: ID_BLOCK
//! and ID_AUTH_INFO): the expected launch digest and the guest policy,
//! signed with an ECDSA P-384 key (SHA-384). The firmware refuses to finish
//! a launch whose digest or policy differs from the signed block; the
//! attestation report then names the key. The IGVM SNP_ID_BLOCK directive
//! carries the block without its policy (the loader takes the file's guest
//! policy) and the signature and public key in the ABI's format: each
//! component little-endian, zero-padded to 72 bytes.

use anyhow::{Context, Result, anyhow, bail, ensure};
use igvm::IgvmDirectiveHeader;
use igvm_defs::{IGVM_VHS_SNP_ID_BLOCK_PUBLIC_KEY, IGVM_VHS_SNP_ID_BLOCK_SIGNATURE};
use p384::ecdsa::signature::{Signer, Verifier};
use p384::ecdsa::{Signature, SigningKey, VerifyingKey};
use std::path::Path;

/// ID_KEY_ALGO / AUTHOR_KEY_ALGO: ECDSA P-384 with SHA-384.
pub const ALGO_ECDSA_P384_SHA384: u32 = 1;
/// The public key's CURVE: P-384.
pub const CURVE_P384: u32 = 2;
/// VERSION of the ID block format.
pub const ID_BLOCK_VERSION: u32 = 1;

/// The 96-byte ID block the key signs.
pub fn id_block_bytes(
    ld: &[u8; 48],
    family_id: &[u8; 16],
    image_id: &[u8; 16],
    guest_svn: u32,
    policy: u64,
) -> [u8; 96] {
    let mut b = [0u8; 96];
    b[..48].copy_from_slice(ld);
    b[48..64].copy_from_slice(family_id);
    b[64..80].copy_from_slice(image_id);
    b[80..84].copy_from_slice(&ID_BLOCK_VERSION.to_le_bytes());
    b[84..88].copy_from_slice(&guest_svn.to_le_bytes());
    b[88..96].copy_from_slice(&policy.to_le_bytes());
    b
}

/// A big-endian 48-byte component as the ABI stores it: little-endian,
/// zero-padded to 72 bytes.
fn abi_component(be: &[u8]) -> [u8; 72] {
    let mut out = [0u8; 72];
    for (o, b) in out.iter_mut().zip(be.iter().rev()) {
        *o = *b;
    }
    out
}

fn be_component(abi: &[u8; 72]) -> Result<[u8; 48]> {
    ensure!(
        abi[48..].iter().all(|&b| b == 0),
        "ID block: a P-384 component has bytes past 48"
    );
    let mut out = [0u8; 48];
    for (o, b) in out.iter_mut().zip(abi[..48].iter().rev()) {
        *o = *b;
    }
    Ok(out)
}

/// Reads the signing key: the private scalar as hexadecimal (96 digits, or
/// 98 with a leading `00` as `openssl ec -text` prints it; whitespace and
/// colons ignored).
pub fn read_key(path: &Path) -> Result<SigningKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the ID key {}", path.display()))?;
    let digits: String = text
        .chars()
        .filter(|c| !c.is_whitespace() && *c != ':')
        .collect();
    ensure!(
        digits.chars().all(|c| c.is_ascii_hexdigit()) && digits.len().is_multiple_of(2),
        "ID key {}: not a hexadecimal P-384 private key",
        path.display()
    );
    let mut bytes: Vec<u8> = (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).unwrap_or(0))
        .collect();
    if bytes.len() == 49 && bytes[0] == 0 {
        bytes.remove(0);
    }
    ensure!(
        bytes.len() == 48,
        "ID key {}: {} bytes, a P-384 private key has 48",
        path.display(),
        bytes.len()
    );
    SigningKey::from_slice(&bytes)
        .map_err(|_| anyhow!("ID key {}: not a valid P-384 private key", path.display()))
}

/// The SNP_ID_BLOCK directive for the launch digest `ld` and `policy`,
/// signed with `key` (no author key).
pub fn directive(key: &SigningKey, mask: u32, ld: &[u8; 48], policy: u64) -> IgvmDirectiveHeader {
    let (family_id, image_id, guest_svn) = ([0u8; 16], [0u8; 16], 0);
    let block = id_block_bytes(ld, &family_id, &image_id, guest_svn, policy);
    let sig: Signature = key.sign(&block);
    let (r, s) = sig.split_bytes();
    let point = key.verifying_key().to_encoded_point(false);
    let (x, y) = (point.x(), point.y());
    IgvmDirectiveHeader::SnpIdBlock {
        compatibility_mask: mask,
        author_key_enabled: 0,
        reserved: [0; 3],
        ld: *ld,
        family_id,
        image_id,
        version: ID_BLOCK_VERSION,
        guest_svn,
        id_key_algorithm: ALGO_ECDSA_P384_SHA384,
        author_key_algorithm: 0,
        id_key_signature: Box::new(IGVM_VHS_SNP_ID_BLOCK_SIGNATURE {
            r_comp: abi_component(&r),
            s_comp: abi_component(&s),
        }),
        id_public_key: Box::new(IGVM_VHS_SNP_ID_BLOCK_PUBLIC_KEY {
            curve: CURVE_P384,
            reserved: 0,
            qx: abi_component(x.map(|v| &v[..]).unwrap_or(&[])),
            qy: abi_component(y.map(|v| &v[..]).unwrap_or(&[])),
        }),
        author_key_signature: Box::new(IGVM_VHS_SNP_ID_BLOCK_SIGNATURE {
            r_comp: [0; 72],
            s_comp: [0; 72],
        }),
        author_public_key: Box::new(IGVM_VHS_SNP_ID_BLOCK_PUBLIC_KEY {
            curve: 0,
            reserved: 0,
            qx: [0; 72],
            qy: [0; 72],
        }),
    }
}

/// Checks an SNP_ID_BLOCK directive against the launch digest `ld` and the
/// guest `policy`: the block names them and its ID key signed it.
pub fn verify(d: &IgvmDirectiveHeader, ld: &[u8; 48], policy: u64) -> Result<()> {
    let IgvmDirectiveHeader::SnpIdBlock {
        ld: block_ld,
        family_id,
        image_id,
        version,
        guest_svn,
        id_key_algorithm,
        id_key_signature,
        id_public_key,
        ..
    } = d
    else {
        bail!("not an SNP ID block");
    };
    ensure!(
        block_ld == ld,
        "ID block: its launch digest does not match the file's"
    );
    ensure!(
        *version == ID_BLOCK_VERSION,
        "ID block: version {version}, expected {ID_BLOCK_VERSION}"
    );
    ensure!(
        *id_key_algorithm == ALGO_ECDSA_P384_SHA384 && id_public_key.curve == CURVE_P384,
        "ID block: key algorithm {id_key_algorithm} curve {}, expected ECDSA P-384",
        id_public_key.curve
    );
    let mut sec1 = vec![4u8];
    sec1.extend_from_slice(&be_component(&id_public_key.qx)?);
    sec1.extend_from_slice(&be_component(&id_public_key.qy)?);
    let key = VerifyingKey::from_sec1_bytes(&sec1)
        .map_err(|_| anyhow!("ID block: the ID key is not a P-384 point"))?;
    let sig = Signature::from_scalars(
        be_component(&id_key_signature.r_comp)?,
        be_component(&id_key_signature.s_comp)?,
    )
    .map_err(|_| anyhow!("ID block: malformed signature"))?;
    let block = id_block_bytes(ld, family_id, image_id, *guest_svn, policy);
    key.verify(&block, &sig)
        .map_err(|_| anyhow!("ID block: the signature does not verify with its ID key"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey::from_slice(&[0x5a; 48]).unwrap()
    }

    #[test]
    fn signed_blocks_verify_and_tampering_is_caught() {
        let ld = [0x11; 48];
        let d = directive(&key(), 2, &ld, 0x3_0000);
        verify(&d, &ld, 0x3_0000).unwrap();
        let e = verify(&d, &[0x12; 48], 0x3_0000).unwrap_err().to_string();
        assert!(e.contains("does not match"), "{e}");
        let e = verify(&d, &ld, 0x3_0001).unwrap_err().to_string();
        assert!(e.contains("does not verify"), "{e}");
        let mut bad = d.clone();
        if let IgvmDirectiveHeader::SnpIdBlock {
            id_key_signature, ..
        } = &mut bad
        {
            id_key_signature.r_comp[0] ^= 1;
        }
        assert!(verify(&bad, &ld, 0x3_0000).is_err());
    }

    #[test]
    fn components_are_little_endian_and_padded() {
        let c = abi_component(&[1, 2, 3]);
        assert_eq!(&c[..4], &[3, 2, 1, 0]);
        assert!(c[3..].iter().all(|&b| b == 0));
        let mut wide = [0u8; 72];
        wide[50] = 1;
        assert!(be_component(&wide).is_err());
        let b = id_block_bytes(&[7; 48], &[8; 16], &[9; 16], 5, 0x3_0000);
        assert_eq!(
            &b[80..96],
            &[1, 0, 0, 0, 5, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0]
        );
    }

    #[test]
    fn key_files() {
        let dir = std::env::temp_dir().join(format!("idkey-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let write = |name: &str, text: &str| {
            let p = dir.join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let hex = "5a".repeat(48);
        let k = read_key(&write("plain", &hex)).unwrap();
        assert_eq!(k.to_bytes()[..], [0x5a; 48]);
        // openssl's `priv:` layout: colons, line breaks, a leading 00.
        let openssl = format!(
            "00:{}",
            hex.as_bytes()
                .chunks(2)
                .map(|c| std::str::from_utf8(c).unwrap())
                .collect::<Vec<_>>()
                .join(":\n    ")
        );
        assert!(read_key(&write("openssl", &openssl)).is_ok());
        for (name, text, want) in [
            ("short", "5a5a", "2 bytes"),
            ("nothex", "zz", "not a hexadecimal"),
            ("zero", &"00".repeat(48), "not a valid P-384"),
        ] {
            let e = read_key(&write(name, text)).unwrap_err().to_string();
            assert!(e.contains(want), "{name}: {e}");
        }
        assert!(read_key(&dir.join("missing")).is_err());
    }
}
