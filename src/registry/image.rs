//! Image layers applied in order into one file tree (whiteouts included), with limits so
//! a hostile or broken registry cannot exhaust memory.

use std::collections::BTreeMap;
use std::io::Read;

use serde_json::Value;

/// Largest compressed layer we pull; module images are a few megabytes.
const MAX_LAYER_BYTES: u64 = 256 << 20;
/// Largest unpacked tree we keep in memory.
const MAX_TREE_BYTES: u64 = 512 << 20;

pub struct LayerRef {
    pub digest: String,
    pub media_type: String,
}

pub fn layer_descriptors(manifest: &Value) -> Result<Vec<LayerRef>, String> {
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
                .filter(|d| d.starts_with("sha256:") && d.len() == 71)
                .ok_or("a layer has no valid sha256 digest")?;
            let size = layer.get("size").and_then(Value::as_u64).unwrap_or(0);
            if size > MAX_LAYER_BYTES {
                return Err(format!(
                    "layer {digest} is {size} bytes, over the {MAX_LAYER_BYTES}-byte limit"
                ));
            }
            Ok(LayerRef {
                digest: digest.to_string(),
                media_type: layer
                    .get("mediaType")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
            })
        })
        .collect()
}

/// The files of an image after all layers are applied.
#[derive(Debug, Clone)]
pub struct ImageTree {
    /// Digest of the image manifest the tree was built from.
    pub digest: String,
    pub files: BTreeMap<String, Vec<u8>>,
    bytes: u64,
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

impl ImageTree {
    pub fn new(digest: String) -> Self {
        ImageTree {
            digest,
            files: BTreeMap::new(),
            bytes: 0,
        }
    }

    fn remove_prefix(&mut self, path: &str) {
        let dir_prefix = format!("{path}/");
        let removed: Vec<String> = self
            .files
            .keys()
            .filter(|key| key.as_str() == path || key.starts_with(&dir_prefix))
            .cloned()
            .collect();
        for key in removed {
            if let Some(content) = self.files.remove(&key) {
                self.bytes -= content.len() as u64;
            }
        }
    }

    /// Applies one layer blob (gzip'd or plain tar).
    pub fn apply_layer(&mut self, blob: &[u8], media_type: &str) -> Result<(), String> {
        let gzipped = media_type.ends_with("gzip") || blob.starts_with(&[0x1f, 0x8b]);
        if media_type.ends_with("zstd") {
            return Err("zstd layers are not supported".into());
        }
        let reader: Box<dyn Read + '_> = if gzipped {
            Box::new(flate2::read::GzDecoder::new(blob))
        } else {
            Box::new(blob)
        };
        let mut archive = tar::Archive::new(reader);
        let entries = archive
            .entries()
            .map_err(|err| format!("not a tar archive: {err}"))?;
        // Opaque whiteouts hide lower-layer content only, so collect this layer first.
        let mut added: Vec<(String, Vec<u8>)> = Vec::new();
        for entry in entries {
            let mut entry = entry.map_err(|err| format!("broken tar entry: {err}"))?;
            let raw = entry
                .path()
                .map_err(|err| format!("bad path: {err}"))?
                .to_string_lossy()
                .to_string();
            let Some(path) = clean_path(&raw) else {
                continue;
            };
            let (dir, name) = match path.rsplit_once('/') {
                Some((dir, name)) => (Some(dir.to_string()), name.to_string()),
                None => (None, path.clone()),
            };
            if name == ".wh..wh..opq" {
                if let Some(dir) = dir {
                    self.remove_prefix(&dir);
                }
                continue;
            }
            if let Some(hidden) = name.strip_prefix(".wh.") {
                let target = match dir {
                    Some(dir) => format!("{dir}/{hidden}"),
                    None => hidden.to_string(),
                };
                self.remove_prefix(&target);
                continue;
            }
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let size = entry.header().size().unwrap_or(0);
            if self.bytes + size > MAX_TREE_BYTES {
                return Err(format!(
                    "the image unpacks to more than {MAX_TREE_BYTES} bytes"
                ));
            }
            let mut content = Vec::with_capacity(size.min(1 << 20) as usize);
            entry
                .by_ref()
                .take(MAX_TREE_BYTES)
                .read_to_end(&mut content)
                .map_err(|err| format!("reading {path}: {err}"))?;
            self.bytes += content.len() as u64;
            added.push((path, content));
        }
        for (path, content) in added {
            if let Some(old) = self.files.insert(path, content) {
                self.bytes -= old.len() as u64;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(files: &[(&str, &str)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, content) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(content.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder
                .append_data(&mut header, path, content.as_bytes())
                .unwrap();
        }
        builder.into_inner().unwrap()
    }

    #[test]
    fn layers_apply_in_order_with_whiteouts() {
        let mut tree = ImageTree::new("sha256:x".into());
        tree.apply_layer(
            &tar_of(&[
                ("a.txt", "1"),
                ("docs/x.md", "x"),
                ("docs/y.md", "y"),
                ("t/k", "k"),
            ]),
            "",
        )
        .unwrap();
        tree.apply_layer(
            &tar_of(&[
                ("a.txt", "2"),
                ("docs/.wh.x.md", ""),
                ("t/.wh..wh..opq", ""),
                ("t/new", "n"),
            ]),
            "",
        )
        .unwrap();
        let names: Vec<&str> = tree.files.keys().map(String::as_str).collect();
        assert_eq!(names, ["a.txt", "docs/y.md", "t/new"]);
        assert_eq!(tree.files["a.txt"], b"2");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut tree = ImageTree::new("sha256:x".into());
        assert!(
            tree.apply_layer(
                &[0x1f, 0x8b, 1, 2, 3],
                "application/vnd.oci.image.layer.v1.tar+gzip"
            )
            .is_err()
        );
        assert!(layer_descriptors(&serde_json::json!({"layers": [{"digest": "md5:1"}]})).is_err());
    }

    #[test]
    fn paths_cannot_escape() {
        assert_eq!(clean_path("./a/../b"), None);
        assert_eq!(clean_path("./a//b"), Some("a/b".into()));
    }
}
