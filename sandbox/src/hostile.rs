//! Hostile module images, for the tests of kubectl-mpo's image read caps and by hand
//! (`mpo-sandbox push-hostile`): a gzip bomb, a layer whose declared size is wrong, a
//! layer whose stored bytes no longer match its digest, 100 000 empty files, file names
//! with newlines and terminal escapes, and tags with hostile names (where the registry
//! takes them).
//!
//! Debian's docker-registry (distribution 2.8) verifies a blob's digest when it is
//! uploaded, so a wrong-digest layer cannot be pushed: it is made by rewriting the
//! stored blob on disk afterwards (as a corrupted storage or a tampering proxy would
//! serve it). Distribution does not compare the sizes a manifest declares with the
//! blobs it stores, so a wrong declared size is pushed as is.

use std::io::Write;

use anyhow::Context;
use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::json;

use crate::image::{OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST, Pushed, Pusher};
use crate::state::State;

pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";

/// What the gzip bomb unpacks to: over the plugin's default 512Mi layer cap.
pub const BOMB_BYTES: u64 = 1 << 30;
/// Entries of the many-files image: over the plugin's default 50 000.
pub const MANY_FILES: usize = 100_000;

/// File names that would move the cursor, recolour, retitle or clear a terminal, or
/// break a line-oriented listing, if printed raw.
pub const HOSTILE_NAMES: [&str; 8] = [
    "evil\nname.yaml",
    "\u{1b}[2J\u{1b}[31mred.txt",
    "\u{1b}]0;pwned\u{7}title.txt",
    "tab\there.txt",
    "cr\rreturn.txt",
    "rtl\u{202e}txt.exe",
    "del\u{7f}.txt",
    "c1\u{9b}31m.txt",
];

/// Tags no OCI registry should accept, and a legal but extreme one (128 characters).
pub fn hostile_tags() -> Vec<String> {
    vec![
        "bad\ntag".to_string(),
        "\u{1b}[2Jclear".to_string(),
        "a b".to_string(),
        format!("_{}", "x".repeat(127)),
    ]
}

/// The hostile images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One gzip'd layer, ~1 MiB, that unpacks to `BOMB_BYTES` of zeros in one file.
    Bomb,
    /// A small layer whose manifest declares 1000 bytes more than the blob has.
    SizeMismatch,
    /// A plain-tar layer whose stored bytes were changed after the upload (same size).
    DigestMismatch,
    /// `MANY_FILES` empty files in one layer.
    ManyFiles,
    /// The usual module files plus files named with `HOSTILE_NAMES`.
    HostileNames,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::Bomb,
        Kind::SizeMismatch,
        Kind::DigestMismatch,
        Kind::ManyFiles,
        Kind::HostileNames,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Bomb => "bomb",
            Kind::SizeMismatch => "size-mismatch",
            Kind::DigestMismatch => "digest-mismatch",
            Kind::ManyFiles => "many-files",
            Kind::HostileNames => "hostile-names",
        }
    }
}

fn gzip(data: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    encoder.write_all(data)?;
    Ok(encoder.finish()?)
}

fn file_header(path: &str, size: u64) -> anyhow::Result<tar::Header> {
    let mut header = tar::Header::new_gnu();
    header.set_path(path)?;
    header.set_size(size);
    header.set_mode(0o644);
    header.set_mtime(1_700_000_000);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    Ok(header)
}

/// A gzip stream of several members (valid gzip, as `gunzip` and Go's reader take it):
/// a tar header for one file of `size` zeros, then the zeros as copies of one
/// compressed 16 MiB member, then the end-of-archive blocks. Built without ever
/// holding the unpacked bytes.
fn gzip_bomb(size: u64) -> anyhow::Result<Vec<u8>> {
    const CHUNK: u64 = 16 << 20;
    anyhow::ensure!(
        size.is_multiple_of(CHUNK),
        "the bomb size must be a multiple of 16 MiB"
    );
    let header = file_header("bomb.bin", size)?;
    let mut out = gzip(header.as_bytes())?;
    let zeros = gzip(&vec![0u8; CHUNK as usize])?;
    for _ in 0..size / CHUNK {
        out.extend_from_slice(&zeros);
    }
    out.extend(gzip(&[0u8; 1024])?);
    Ok(out)
}

fn tar_of(files: &[(String, Vec<u8>)]) -> anyhow::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, content) in files {
        let mut header = file_header("placeholder", content.len() as u64)?;
        builder
            .append_data(&mut header, path, content.as_slice())
            .with_context(|| format!("adding {path:?} to a tar"))?;
    }
    Ok(builder.into_inner()?)
}

/// A blob as pushed, with the size its manifest declares.
struct RawLayer {
    blob: Vec<u8>,
    media_type: &'static str,
    declared_size: u64,
}

impl RawLayer {
    /// A layer whose manifest declares its true size.
    fn honest(blob: Vec<u8>, media_type: &'static str) -> Self {
        RawLayer {
            declared_size: blob.len() as u64,
            blob,
            media_type,
        }
    }
}

/// Pushes the blobs, a config and a manifest that declares what `layers` say, under
/// `repository:tag`.
async fn push_layers(
    pusher: &Pusher,
    repository: &str,
    tag: &str,
    layers: Vec<RawLayer>,
) -> anyhow::Result<(Pushed, Vec<String>)> {
    let reference = pusher.reference(repository, tag)?;
    let mut descriptors = Vec::new();
    let mut digests = Vec::new();
    for layer in layers {
        let digest = pusher.push_blob(&reference, layer.blob).await?;
        descriptors.push(json!({
            "mediaType": layer.media_type,
            "digest": digest,
            "size": layer.declared_size,
        }));
        digests.push(digest);
    }
    // diff_ids are not computed (that would mean hashing a gigabyte of zeros): these
    // images are read, never run.
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": digests},
    }))?;
    let config_size = config.len();
    let config_digest = pusher.push_blob(&reference, config).await?;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config_size},
        "layers": descriptors,
    }))?;
    let pushed = pusher
        .push_manifest(&reference, manifest, OCI_MANIFEST)
        .await?;
    Ok((pushed, digests))
}

/// Where the `tls` registry stores a blob (its filesystem storage driver's layout).
fn stored_blob(state: &State, digest: &str) -> anyhow::Result<std::path::PathBuf> {
    let hex = digest
        .strip_prefix("sha256:")
        .filter(|hex| hex.len() == 64)
        .with_context(|| format!("not a sha256 digest: {digest}"))?;
    Ok(state
        .dir
        .join("data/registry-tls/docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(hex)
        .join("data"))
}

/// A module's usual files with a marker that makes the layer unique to this push.
fn unique_files(module: &str, tag: &str) -> Vec<(String, Vec<u8>)> {
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let mut files = crate::image::module_files(module, tag, &[], &format!("hostile {nonce}"));
    files.push(("nonce".into(), format!("{nonce}\n").into_bytes()));
    files
}

/// Pushes the hostile image `kind` to the `tls` registry as `<repo>/<module>:<tag>`.
pub async fn push(state: &State, module: &str, tag: &str, kind: Kind) -> anyhow::Result<Pushed> {
    let pusher = Pusher::new(state, "tls")?;
    let repository = format!("{}/{module}", crate::seed::repo_path("tls"));
    let layer = match kind {
        Kind::Bomb => RawLayer::honest(
            tokio::task::spawn_blocking(|| gzip_bomb(BOMB_BYTES)).await??,
            OCI_LAYER_GZIP,
        ),
        Kind::SizeMismatch => {
            let blob = gzip(&tar_of(&unique_files(module, tag))?)?;
            RawLayer {
                declared_size: blob.len() as u64 + 1000,
                blob,
                media_type: OCI_LAYER_GZIP,
            }
        }
        Kind::DigestMismatch => {
            RawLayer::honest(tar_of(&unique_files(module, tag))?, OCI_LAYER_TAR)
        }
        Kind::ManyFiles => {
            let blob = tokio::task::spawn_blocking(|| {
                let files: Vec<(String, Vec<u8>)> = (0..MANY_FILES)
                    .map(|i| (format!("many/{:03}/{i:06}", i / 1000), Vec::new()))
                    .collect();
                gzip(&tar_of(&files)?)
            })
            .await??;
            RawLayer::honest(blob, OCI_LAYER_GZIP)
        }
        Kind::HostileNames => {
            let mut files = unique_files(module, tag);
            for name in HOSTILE_NAMES {
                files.push((
                    format!("hostile/{name}"),
                    format!("content of {name}\n\u{1b}[2J\u{1b}]0;pwned\u{7}\n").into_bytes(),
                ));
            }
            RawLayer::honest(gzip(&tar_of(&files)?)?, OCI_LAYER_GZIP)
        }
    };
    let original = (kind == Kind::DigestMismatch).then(|| layer.blob.clone());
    let (pushed, digests) = push_layers(&pusher, &repository, tag, vec![layer]).await?;
    if let (Some(mut bytes), Some(digest)) = (original, digests.first()) {
        // Same length, other bytes: a changed file content inside the tar, so the
        // layer still reads as a valid archive and only its digest gives it away.
        let at = bytes
            .windows(8)
            .position(|w| w == b"hostile ")
            .context("marker not found in the layer")?;
        bytes[at..at + 8].copy_from_slice(b"HOSTILE!");
        let path = stored_blob(state, digest)?;
        std::fs::write(&path, &bytes)
            .with_context(|| format!("rewriting the stored blob {}", path.display()))?;
    }
    Ok(pushed)
}

/// What the registry did with one hostile tag.
#[derive(Debug, Clone)]
pub struct TagAttempt {
    pub tag: String,
    /// `None`: accepted; else the registry's (or the client's) refusal.
    pub refused: Option<String>,
}

/// Pushes a small image under each of `hostile_tags()` to `<repo>/<module>` and says
/// which the registry took.
pub async fn push_hostile_tags(state: &State, module: &str) -> anyhow::Result<Vec<TagAttempt>> {
    let pusher = Pusher::new(state, "tls")?;
    let repository = format!("{}/{module}", crate::seed::repo_path("tls"));
    let layer = crate::image::Layer::with_files(unique_files(module, "tags"));
    let base = pusher
        .push_image(&repository, "base", &[layer], "amd64")
        .await?;
    let registry = state.registry("tls")?;
    let mut attempts = Vec::new();
    for tag in hostile_tags() {
        // Built from parts, not parsed: the client's parser would refuse these before
        // the registry could.
        let reference =
            oci_client::Reference::with_tag(registry.host.clone(), repository.clone(), tag.clone());
        let refused = match pusher
            .retag_reference(&repository, &base.digest, &reference)
            .await
        {
            Ok(()) => None,
            Err(err) => Some(format!("{err:#}")),
        };
        attempts.push(TagAttempt { tag, refused });
    }
    Ok(attempts)
}
