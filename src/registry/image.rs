//! Image layers read as streams and applied in order into one file listing (whiteouts
//! included), with caps so that a hostile or broken registry cannot exhaust the
//! machine: decompressed bytes per layer and per image, entries per image, and the size
//! of a file kept in memory. Only the files a command asks for are kept; of the others
//! only the size (and, for `diff`, a sha256) is remembered, so memory is bounded by the
//! largest file inspected, not by the image.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read};
use std::rc::Rc;
use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};

/// Longest path (GNU long name or PAX `path`) accepted in a layer.
const MAX_PATH_BYTES: u64 = 64 << 10;
/// Largest PAX extended header accepted in a layer.
const MAX_PAX_BYTES: u64 = 1 << 20;

/// The caps on one image read. Defaults fit real module images (a few MiB, a few
/// hundred files) with a wide margin; each has a flag to raise it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageLimits {
    /// Decompressed bytes of one layer (`--max-layer-size`).
    pub max_layer_bytes: u64,
    /// Decompressed bytes of all layers together (`--max-image-size`).
    pub max_image_bytes: u64,
    /// Tar entries (files, directories, links, whiteouts) of all layers (`--max-files`).
    pub max_entries: u64,
    /// One file read into memory: printed by `cat`, shown as a diff (`--max-file-size`).
    pub max_file_bytes: u64,
    /// The whole read: manifests and every layer (`--pull-timeout`).
    pub timeout: Duration,
}

impl Default for ImageLimits {
    fn default() -> Self {
        ImageLimits {
            max_layer_bytes: 512 << 20,
            max_image_bytes: 1 << 30,
            max_entries: 50_000,
            max_file_bytes: 16 << 20,
            timeout: Duration::from_secs(300),
        }
    }
}

/// `512Mi`-style rendering of a byte count, as the flags take it.
pub fn human_bytes(bytes: u64) -> String {
    for (unit, shift) in [("Gi", 30), ("Mi", 20), ("Ki", 10)] {
        if bytes >= 1 << shift && bytes.is_multiple_of(1 << shift) {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    format!("{bytes} bytes")
}

/// Which file contents a read keeps in memory.
#[derive(Debug, Clone, Default)]
pub struct ReadPlan {
    /// Paths whose content is kept (when not larger than `max_file_bytes`).
    pub keep: BTreeSet<String>,
    /// Whether a sha256 of every file is computed (to compare images without keeping
    /// their content).
    pub digests: bool,
}

impl ReadPlan {
    /// Keeps the given paths only.
    pub fn keep<I: IntoIterator<Item = S>, S: Into<String>>(paths: I) -> Self {
        ReadPlan {
            keep: paths.into_iter().map(Into::into).collect(),
            digests: false,
        }
    }
}

/// Why an image read stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageError {
    /// A cap was exceeded; the message names the flag that raises it.
    Limit(String),
    /// The layer is not a readable tar (or gzip'd tar).
    Malformed(String),
}

pub struct LayerRef {
    pub digest: String,
    pub media_type: String,
    /// The size the manifest declares for the (compressed) blob.
    pub size: u64,
}

pub fn layer_descriptors(manifest: &Value, limits: &ImageLimits) -> Result<Vec<LayerRef>, String> {
    let layers = manifest
        .get("layers")
        .and_then(Value::as_array)
        .ok_or("the manifest has no layers")?;
    layers
        .iter()
        .map(|layer| {
            let digest = layer
                .get("digest")
                .and_then(Value::as_str)
                .filter(|d| {
                    d.len() == 71
                        && d.strip_prefix("sha256:")
                            .is_some_and(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()))
                })
                .ok_or("a layer has no valid sha256 digest")?;
            let size = layer
                .get("size")
                .and_then(Value::as_u64)
                .ok_or_else(|| format!("layer {digest} has no size"))?;
            // A compressed layer is never much larger than its content.
            if size > limits.max_layer_bytes {
                return Err(format!(
                    "layer {digest} is {size} bytes compressed, over the {} limit (raise it with --max-layer-size)",
                    human_bytes(limits.max_layer_bytes)
                ));
            }
            Ok(LayerRef {
                digest: digest.to_string(),
                media_type: layer
                    .get("mediaType")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                size,
            })
        })
        .collect()
}

/// One file of an image after all layers are applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    /// Size from the tar header.
    pub size: u64,
    /// sha256 of the content, when the read plan asked for digests.
    pub digest: Option<[u8; 32]>,
    /// The content, when the plan keeps this path and it fits `max_file_bytes`.
    pub content: Option<Vec<u8>>,
}

/// How much of an image has been read so far (all layers before the current one).
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadCounts {
    entries: u64,
    unpacked: u64,
}

/// The files of an image after all layers are applied.
#[derive(Debug, Clone)]
pub struct ImageTree {
    /// Digest of the image manifest the tree was built from.
    pub digest: String,
    pub files: BTreeMap<String, FileInfo>,
    /// Tar entries read so far (all layers).
    entries: u64,
    /// Decompressed bytes read so far (all layers).
    unpacked: u64,
}

fn clean_path(raw: &str) -> Option<String> {
    let mut parts = Vec::new();
    for part in raw.split('/') {
        match part {
            "" | "." => {}
            ".." => return None,
            other => parts.push(other),
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// What one layer does to the tree: whiteouts (applied to the lower layers only) and
/// the files it adds.
#[derive(Debug, Default)]
pub struct LayerDelta {
    removed: Vec<String>,
    added: Vec<(String, FileInfo)>,
    entries: u64,
    unpacked: u64,
}

/// Counts decompressed bytes and stops at the layer and image caps. The breach is
/// recorded on the side: gzip and tar wrap the reader's errors in their own.
struct CappedReader<R> {
    inner: R,
    read: u64,
    layer_cap: u64,
    image_before: u64,
    image_cap: u64,
    breach: Rc<RefCell<Option<ImageError>>>,
    layer: String,
}

impl<R: Read> Read for CappedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        let breach = if self.read > self.layer_cap {
            Some(ImageError::Limit(format!(
                "layer {} unpacks to more than {} (a decompression bomb?); raise the cap with --max-layer-size",
                self.layer,
                human_bytes(self.layer_cap)
            )))
        } else if self.image_before + self.read > self.image_cap {
            Some(ImageError::Limit(format!(
                "the image unpacks to more than {}; raise the cap with --max-image-size",
                human_bytes(self.image_cap)
            )))
        } else {
            None
        };
        if let Some(breach) = breach {
            *self.breach.borrow_mut() = Some(breach);
            return Err(std::io::Error::other("image read limit exceeded"));
        }
        Ok(n)
    }
}

/// Reads at most `cap` bytes of an entry; `None` when it is longer.
fn read_bounded(entry: &mut impl Read, cap: u64) -> std::io::Result<Option<Vec<u8>>> {
    let mut data = Vec::new();
    entry.take(cap + 1).read_to_end(&mut data)?;
    Ok((data.len() as u64 <= cap).then_some(data))
}

/// Path of an entry from raw bytes: the PAX or GNU long name when one preceded it.
fn entry_path(bytes: &[u8]) -> String {
    let trimmed = bytes.split(|&b| b == 0).next().unwrap_or_default();
    String::from_utf8_lossy(trimmed).into_owned()
}

/// Reads one layer (gzip'd or plain tar) from `reader` without applying it. `layer` names
/// it in errors; `before` counts the layers before it.
pub fn read_layer<R: Read>(
    reader: R,
    media_type: &str,
    layer: &str,
    before: ReadCounts,
    limits: &ImageLimits,
    plan: &ReadPlan,
) -> Result<LayerDelta, ImageError> {
    if media_type.ends_with("zstd") {
        return Err(ImageError::Malformed(format!(
            "layer {layer}: zstd layers are not supported"
        )));
    }
    let breach = Rc::new(RefCell::new(None));
    let mut buffered = BufReader::with_capacity(64 << 10, reader);
    let head = buffered
        .fill_buf()
        .map_err(|err| ImageError::Malformed(format!("layer {layer}: {err}")))?;
    let gzipped = media_type.ends_with("gzip") || head.starts_with(&[0x1f, 0x8b]);
    let decoded: Box<dyn Read> = if gzipped {
        Box::new(flate2::read::MultiGzDecoder::new(buffered))
    } else {
        Box::new(buffered)
    };
    let capped = CappedReader {
        inner: decoded,
        read: 0,
        layer_cap: limits.max_layer_bytes,
        image_before: before.unpacked,
        image_cap: limits.max_image_bytes,
        breach: breach.clone(),
        layer: layer.to_string(),
    };
    let mut delta = LayerDelta::default();
    let result = read_entries(capped, layer, before, limits, plan, &mut delta, &breach);
    if let Some(limit) = breach.borrow_mut().take() {
        return Err(limit);
    }
    result.map(|unpacked| {
        delta.unpacked = unpacked;
        delta
    })
}

fn read_entries<R: Read>(
    capped: CappedReader<R>,
    layer: &str,
    before: ReadCounts,
    limits: &ImageLimits,
    plan: &ReadPlan,
    delta: &mut LayerDelta,
    breach: &Rc<RefCell<Option<ImageError>>>,
) -> Result<u64, ImageError> {
    let broken = |what: &str, err: std::io::Error| {
        breach
            .borrow_mut()
            .take()
            .unwrap_or_else(|| ImageError::Malformed(format!("layer {layer}: {what}: {err}")))
    };
    let mut archive = tar::Archive::new(capped);
    // Raw entries: GNU long names and PAX headers are read here, with a cap, instead of
    // whole into memory by the tar reader.
    let entries = archive
        .entries()
        .map_err(|err| broken("not a tar archive", err))?
        .raw(true);
    let mut long_name: Option<String> = None;
    for entry in entries {
        let mut entry = entry.map_err(|err| broken("broken tar entry", err))?;
        delta.entries += 1;
        if before.entries + delta.entries > limits.max_entries {
            return Err(ImageError::Limit(format!(
                "the image has more than {} entries; raise the cap with --max-files",
                limits.max_entries
            )));
        }
        let entry_type = entry.header().entry_type();
        if entry_type.is_gnu_longname() {
            let data = read_bounded(&mut entry, MAX_PATH_BYTES)
                .map_err(|err| broken("reading a long name", err))?
                .ok_or_else(|| {
                    ImageError::Malformed(format!("layer {layer}: a path is longer than 64 KiB"))
                })?;
            long_name = Some(entry_path(&data));
            continue;
        }
        if entry_type.is_pax_local_extensions() {
            let data = read_bounded(&mut entry, MAX_PAX_BYTES)
                .map_err(|err| broken("reading a PAX header", err))?
                .ok_or_else(|| {
                    ImageError::Malformed(format!(
                        "layer {layer}: a PAX header is larger than 1 MiB"
                    ))
                })?;
            for extension in tar::PaxExtensions::new(&data).flatten() {
                if extension.key_bytes() == b"path" {
                    if extension.value_bytes().len() as u64 > MAX_PATH_BYTES {
                        return Err(ImageError::Malformed(format!(
                            "layer {layer}: a path is longer than 64 KiB"
                        )));
                    }
                    long_name = Some(entry_path(extension.value_bytes()));
                }
            }
            continue;
        }
        if entry_type.is_pax_global_extensions() || entry_type.is_gnu_longlink() {
            continue;
        }
        let raw = long_name
            .take()
            .unwrap_or_else(|| entry_path(&entry.header().path_bytes()));
        let Some(path) = clean_path(&raw) else {
            continue;
        };
        let (dir, name) = match path.rsplit_once('/') {
            Some((dir, name)) => (Some(dir), name),
            None => (None, path.as_str()),
        };
        if name == ".wh..wh..opq" {
            if let Some(dir) = dir {
                delta.removed.push(format!("{dir}/"));
            }
            continue;
        }
        if let Some(hidden) = name.strip_prefix(".wh.") {
            let target = match dir {
                Some(dir) => format!("{dir}/{hidden}"),
                None => hidden.to_string(),
            };
            delta.removed.push(target);
            continue;
        }
        if !entry_type.is_file() {
            continue;
        }
        let size = entry.header().size().unwrap_or(0);
        let keep = plan.keep.contains(&path) && size <= limits.max_file_bytes;
        let mut content = keep.then(|| Vec::with_capacity(size.min(1 << 20) as usize));
        let mut digest = None;
        if plan.digests || keep {
            let mut hasher = Sha256::new();
            let mut buffer = [0u8; 16 << 10];
            loop {
                let n = entry
                    .read(&mut buffer)
                    .map_err(|err| broken(&format!("reading {path}"), err))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buffer[..n]);
                if let Some(content) = content.as_mut() {
                    content.extend_from_slice(&buffer[..n]);
                }
            }
            digest = plan.digests.then(|| hasher.finalize().into());
        }
        delta.added.push((
            path,
            FileInfo {
                size,
                digest,
                content,
            },
        ));
    }
    // Drain what follows the end-of-archive marker, so the whole layer is counted.
    let mut rest = archive.into_inner();
    std::io::copy(&mut rest, &mut std::io::sink())
        .map_err(|err| broken("reading past the end of the archive", err))?;
    Ok(rest.read)
}

impl ImageTree {
    pub fn new(digest: String) -> Self {
        ImageTree {
            digest,
            files: BTreeMap::new(),
            entries: 0,
            unpacked: 0,
        }
    }

    pub fn counts(&self) -> ReadCounts {
        ReadCounts {
            entries: self.entries,
            unpacked: self.unpacked,
        }
    }

    /// The content of `path`, when the read plan kept it.
    pub fn content(&self, path: &str) -> Option<&[u8]> {
        self.files.get(path)?.content.as_deref()
    }

    /// Applies a layer read with `read_layer`: its whiteouts hide lower-layer content,
    /// then its files are added.
    pub fn apply(&mut self, delta: LayerDelta) {
        for removed in &delta.removed {
            match removed.strip_suffix('/') {
                // Opaque directory: everything below it, not the directory itself.
                Some(dir) => {
                    let prefix = format!("{dir}/");
                    self.files.retain(|key, _| !key.starts_with(&prefix));
                }
                None => {
                    let prefix = format!("{removed}/");
                    self.files
                        .retain(|key, _| key != removed && !key.starts_with(&prefix));
                }
            }
        }
        self.files.extend(delta.added);
        self.entries += delta.entries;
        self.unpacked += delta.unpacked;
    }

    /// Reads one layer from memory and applies it.
    #[cfg(test)]
    pub fn apply_layer(
        &mut self,
        blob: &[u8],
        media_type: &str,
        limits: &ImageLimits,
        plan: &ReadPlan,
    ) -> Result<(), ImageError> {
        let delta = read_layer(blob, media_type, "in memory", self.counts(), limits, plan)?;
        self.apply(delta);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, content) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(content.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append_data(&mut header, path, *content).unwrap();
        }
        builder.into_inner().unwrap()
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    fn keep_all(paths: &[&str]) -> ReadPlan {
        ReadPlan {
            keep: paths.iter().map(|p| p.to_string()).collect(),
            digests: true,
        }
    }

    #[test]
    fn layers_apply_in_order_with_whiteouts() {
        let limits = ImageLimits::default();
        let plan = keep_all(&["a.txt"]);
        let mut tree = ImageTree::new("sha256:x".into());
        tree.apply_layer(
            &tar_of(&[
                ("a.txt", b"1"),
                ("docs/x.md", b"x"),
                ("docs/y.md", b"y"),
                ("t/k", b"k"),
            ]),
            "",
            &limits,
            &plan,
        )
        .unwrap();
        tree.apply_layer(
            &gzip(&tar_of(&[
                ("a.txt", b"2"),
                ("docs/.wh.x.md", b""),
                ("t/.wh..wh..opq", b""),
                ("t/new", b"n"),
            ])),
            "application/vnd.oci.image.layer.v1.tar+gzip",
            &limits,
            &plan,
        )
        .unwrap();
        let names: Vec<&str> = tree.files.keys().map(String::as_str).collect();
        assert_eq!(names, ["a.txt", "docs/y.md", "t/new"]);
        assert_eq!(tree.content("a.txt"), Some(b"2".as_slice()));
        // Not asked for: size and digest only.
        assert_eq!(tree.content("t/new"), None);
        assert_eq!(tree.files["t/new"].size, 1);
        assert_eq!(
            tree.files["t/new"].digest,
            Some(Sha256::digest(b"n").into())
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let limits = ImageLimits::default();
        let mut tree = ImageTree::new("sha256:x".into());
        let err = tree
            .apply_layer(
                &[0x1f, 0x8b, 1, 2, 3],
                "application/vnd.oci.image.layer.v1.tar+gzip",
                &limits,
                &ReadPlan::default(),
            )
            .unwrap_err();
        assert!(matches!(err, ImageError::Malformed(_)), "{err:?}");
        assert!(
            layer_descriptors(
                &serde_json::json!({"layers": [{"digest": "md5:1", "size": 1}]}),
                &limits
            )
            .is_err()
        );
        let digest = format!("sha256:{}", "a".repeat(64));
        assert!(
            layer_descriptors(
                &serde_json::json!({"layers": [{"digest": digest}]}),
                &limits
            )
            .is_err(),
            "a layer without a declared size is refused"
        );
    }

    #[test]
    fn a_gzip_bomb_stops_at_the_layer_cap() {
        // 32 MiB of zeros in one file compresses to ~32 KiB.
        let zeros = vec![0u8; 32 << 20];
        let bomb = gzip(&tar_of(&[("zeros", &zeros)]));
        drop(zeros);
        assert!(bomb.len() < 1 << 20);
        let limits = ImageLimits {
            max_layer_bytes: 8 << 20,
            ..ImageLimits::default()
        };
        let mut tree = ImageTree::new("sha256:x".into());
        let err = tree
            .apply_layer(&bomb, "", &limits, &keep_all(&["zeros"]))
            .unwrap_err();
        match err {
            ImageError::Limit(message) => {
                assert!(message.contains("--max-layer-size"), "{message}");
                assert!(message.contains("8Mi"), "{message}");
            }
            other => panic!("expected the layer cap, got {other:?}"),
        }
        // The same layer under a high enough cap reads, without keeping the content
        // (it is over max_file_bytes).
        let limits = ImageLimits {
            max_file_bytes: 1 << 20,
            ..ImageLimits::default()
        };
        tree.apply_layer(&bomb, "", &limits, &keep_all(&["zeros"]))
            .unwrap();
        assert_eq!(tree.files["zeros"].size, 32 << 20);
        assert_eq!(tree.content("zeros"), None);
    }

    #[test]
    fn the_image_cap_counts_all_layers() {
        let layer = tar_of(&[("f", &[7u8; 300 << 10])]);
        let limits = ImageLimits {
            max_image_bytes: 1 << 20,
            ..ImageLimits::default()
        };
        let plan = ReadPlan::default();
        let mut tree = ImageTree::new("sha256:x".into());
        for _ in 0..3 {
            tree.apply_layer(&layer, "", &limits, &plan).unwrap();
        }
        let err = tree.apply_layer(&layer, "", &limits, &plan).unwrap_err();
        assert!(
            matches!(&err, ImageError::Limit(m) if m.contains("--max-image-size")),
            "{err:?}"
        );
    }

    #[test]
    fn too_many_entries_stop_the_read() {
        let names: Vec<String> = (0..101).map(|i| format!("empty/{i}")).collect();
        let files: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b""[..])).collect();
        let layer = gzip(&tar_of(&files));
        let limits = ImageLimits {
            max_entries: 100,
            ..ImageLimits::default()
        };
        let mut tree = ImageTree::new("sha256:x".into());
        let err = tree
            .apply_layer(&layer, "", &limits, &ReadPlan::default())
            .unwrap_err();
        assert!(
            matches!(&err, ImageError::Limit(m) if m.contains("--max-files")),
            "{err:?}"
        );
        let limits = ImageLimits {
            max_entries: 101,
            ..ImageLimits::default()
        };
        tree.apply_layer(&layer, "", &limits, &ReadPlan::default())
            .unwrap();
        assert_eq!(tree.files.len(), 101);
    }

    #[test]
    fn truncated_layers_are_errors() {
        let layer = gzip(&tar_of(&[("a", &[1u8; 10_000])]));
        let mut tree = ImageTree::new("sha256:x".into());
        let err = tree
            .apply_layer(
                &layer[..layer.len() / 2],
                "",
                &ImageLimits::default(),
                &keep_all(&["a"]),
            )
            .unwrap_err();
        assert!(matches!(err, ImageError::Malformed(_)), "{err:?}");
        assert!(tree.files.is_empty(), "nothing applied from a broken layer");
    }

    #[test]
    fn long_and_hostile_names_are_kept_as_data() {
        let long = format!("dir/{}", "n".repeat(300));
        let hostile = "evil\n\u{1b}]0;title\u{7}\u{1b}[2J.txt";
        let mut builder = tar::Builder::new(Vec::new());
        for path in [long.as_str(), hostile] {
            let mut header = tar::Header::new_gnu();
            header.set_size(1);
            header.set_mode(0o644);
            builder.append_data(&mut header, path, &b"x"[..]).unwrap();
        }
        let layer = builder.into_inner().unwrap();
        let mut tree = ImageTree::new("sha256:x".into());
        tree.apply_layer(&layer, "", &ImageLimits::default(), &keep_all(&[]))
            .unwrap();
        assert!(tree.files.contains_key(&long));
        assert!(tree.files.contains_key(hostile));
    }

    #[test]
    fn paths_cannot_escape() {
        assert_eq!(clean_path("./a/../b"), None);
        assert_eq!(clean_path("./a//b"), Some("a/b".into()));
    }

    #[test]
    fn sizes_render_as_flags_take_them() {
        assert_eq!(human_bytes(512 << 20), "512Mi");
        assert_eq!(human_bytes(1 << 30), "1Gi");
        assert_eq!(human_bytes(1000), "1000 bytes");
    }
}
