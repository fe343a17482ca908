//! Reading and rewriting one kubeconfig file the way kubectl does when it persists
//! refreshed OIDC tokens: only the user's `auth-provider.config` changes, the rest of
//! the document is kept (comments are lost, as with kubectl), the new file replaces the
//! old one atomically with the same permissions, and writers exclude each other with
//! client-go's `<file>.lock` convention.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The first file of `paths` that defines user `user` (kubectl's merge: the first
/// definition of a name wins).
pub fn file_of_user(paths: &[PathBuf], user: &str) -> Option<PathBuf> {
    paths.iter().find_map(|path| {
        let document = read_document(path).ok()?;
        user_entry(&document, user).map(|_| path.clone())
    })
}

pub fn read_document(path: &Path) -> Result<Value, String> {
    let text = fs::read_to_string(path).map_err(|err| format!("cannot read: {err}"))?;
    parse_document(&text)
}

pub fn parse_document(text: &str) -> Result<Value, String> {
    serde_saphyr::from_str::<Value>(text).map_err(|_| "not valid YAML".to_string())
}

/// `users[].user` of the named user.
pub fn user_entry<'a>(document: &'a Value, user: &str) -> Option<&'a Value> {
    document
        .get("users")?
        .as_array()?
        .iter()
        .find(|entry| entry.get("name").and_then(Value::as_str) == Some(user))?
        .get("user")
}

/// `users[].user.auth-provider.config` of the named user, when its provider is oidc.
pub fn oidc_config<'a>(
    document: &'a Value,
    user: &str,
) -> Option<&'a serde_json::Map<String, Value>> {
    let provider = user_entry(document, user)?.get("auth-provider")?;
    if provider.get("name").and_then(Value::as_str) != Some("oidc") {
        return None;
    }
    provider.get("config")?.as_object()
}

/// Puts new tokens into the user's oidc config. Returns false (and changes nothing)
/// when the user is gone or its refresh token is no longer `expected_refresh_token`:
/// someone else refreshed meanwhile and their tokens are the current ones.
pub fn set_tokens(
    document: &mut Value,
    user: &str,
    expected_refresh_token: &str,
    id_token: &str,
    refresh_token: &str,
) -> bool {
    let Some(config) = document
        .get_mut("users")
        .and_then(Value::as_array_mut)
        .and_then(|users| {
            users
                .iter_mut()
                .find(|entry| entry.get("name").and_then(Value::as_str) == Some(user))
        })
        .and_then(|entry| entry.get_mut("user"))
        .and_then(|entry| entry.get_mut("auth-provider"))
        .filter(|provider| provider.get("name").and_then(Value::as_str) == Some("oidc"))
        .and_then(|provider| provider.get_mut("config"))
        .and_then(Value::as_object_mut)
    else {
        return false;
    };
    if config.get("refresh-token").and_then(Value::as_str) != Some(expected_refresh_token) {
        return false;
    }
    config.insert("id-token".into(), Value::String(id_token.into()));
    config.insert("refresh-token".into(), Value::String(refresh_token.into()));
    true
}

/// Serializes the document; checks that the text reads back as the same document and
/// as a kubeconfig before anything is written.
pub fn render_document(document: &Value) -> Result<String, String> {
    // Tokens and certificate data stay plain one-line scalars, as kubectl writes them
    // (the default would fold long strings into `>-` blocks).
    let mut options = serde_saphyr::SerializerOptions::default();
    options.prefer_block_scalars = false;
    let text = serde_saphyr::to_string_with_options(document, options)
        .map_err(|err| format!("cannot serialize: {err}"))?;
    match parse_document(&text) {
        Ok(back) if &back == document => {}
        _ => return Err("the rewritten kubeconfig does not read back the same".into()),
    }
    if serde_saphyr::from_str::<kube::config::Kubeconfig>(&text).is_err() {
        return Err("the rewritten kubeconfig is not a valid kubeconfig".into());
    }
    Ok(text)
}

/// Replaces `path`'s content by `text` atomically: a temporary file in the same
/// directory with the same permissions, flushed to disk, renamed over the original,
/// and the directory entry flushed. A symlinked kubeconfig is written through the link.
pub fn replace_atomically(path: &Path, text: &str) -> Result<(), String> {
    let target = fs::canonicalize(path).map_err(|err| format!("cannot resolve: {err}"))?;
    let metadata = fs::metadata(&target).map_err(|err| format!("cannot stat: {err}"))?;
    let dir = target
        .parent()
        .ok_or_else(|| "the file has no directory".to_string())?;
    let name = target
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| "kubeconfig".into());
    let temp = dir.join(format!(".{name}.kubectl-mpo-{}.tmp", std::process::id()));
    let mode = metadata.permissions().mode() & 0o7777;
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&temp)
            .map_err(|err| format!("cannot create {}: {err}", temp.display()))?;
        // The umask may have narrowed the mode; make it exactly the original's.
        file.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(|err| format!("cannot set permissions: {err}"))?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|err| format!("cannot write {}: {err}", temp.display()))?;
        fs::rename(&temp, &target).map_err(|err| format!("cannot replace the file: {err}"))?;
        if let Ok(dir) = File::open(dir) {
            let _ = dir.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

/// client-go's write lock: `<file>.lock` created exclusively and removed when done.
/// kubectl takes it around every kubeconfig write, including its own token refreshes.
pub struct WriteLock {
    path: PathBuf,
}

impl WriteLock {
    /// Waits up to `wait` for the lock. `None` when it stays taken (a stale lock left by
    /// a crashed process): the caller writes anyway rather than lose rotated tokens.
    pub async fn acquire(kubeconfig: &Path, wait: Duration) -> Option<Self> {
        let mut path = kubeconfig.as_os_str().to_owned();
        path.push(".lock");
        let path = PathBuf::from(path);
        let deadline = Instant::now() + wait;
        loop {
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(_) => return Some(Self { path }),
                Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
                    if Instant::now() >= deadline {
                        return None;
                    }
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
                // A read-only directory: nobody else can write the file either.
                Err(_) => return None,
            }
        }
    }
}

impl Drop for WriteLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// An advisory lock (flock) on the kubeconfig itself that serializes refreshes by
/// several kubectl-mpo processes, so that only one of them spends the refresh token.
/// kubectl does not take it, which is fine: it only ever blocks other kubectl-mpo
/// processes. Since the file is replaced by rename, a lock won on a replaced inode is
/// dropped and taken again on the current file.
pub struct RefreshLock {
    _file: File,
}

impl RefreshLock {
    pub async fn acquire(kubeconfig: &Path, wait: Duration) -> Result<Option<Self>, String> {
        let deadline = Instant::now() + wait;
        loop {
            let file = File::open(kubeconfig).map_err(|err| format!("cannot open: {err}"))?;
            match file.try_lock() {
                Ok(()) => {
                    let locked = file
                        .metadata()
                        .map_err(|err| format!("cannot stat: {err}"))?;
                    let current =
                        fs::metadata(kubeconfig).map_err(|err| format!("cannot stat: {err}"))?;
                    if locked.ino() == current.ino() && locked.dev() == current.dev() {
                        return Ok(Some(Self { _file: file }));
                    }
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    if Instant::now() >= deadline {
                        return Err("another kubectl-mpo is refreshing this login".into());
                    }
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
                // File systems without flock: go on without it.
                Err(std::fs::TryLockError::Error(_)) => return Ok(None),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GENERATED: &str = r#"apiVersion: v1
kind: Config
preferences: {}
clusters:
- name: dkp
  cluster:
    server: https://api.dkp.example:6443
    certificate-authority-data: Q0EK
users:
- name: other
  user:
    token: static-token-of-another-user
- name: dev@dkp
  user:
    auth-provider:
      name: oidc
      config:
        idp-issuer-url: https://dex.dkp.example/
        client-id: kubeconfig-generator
        client-secret: s3cret
        id-token: old.id.token
        refresh-token: old-refresh
        idp-certificate-authority-data: Q0EK
contexts:
- name: dev@dkp
  context:
    cluster: dkp
    user: dev@dkp
    namespace: "0123"
current-context: dev@dkp
"#;

    #[test]
    fn set_tokens_changes_only_the_users_tokens() {
        let mut document = parse_document(GENERATED).expect("parse");
        let before = document.clone();
        assert!(set_tokens(
            &mut document,
            "dev@dkp",
            "old-refresh",
            "new.id.token",
            "new-refresh"
        ));
        let config = oidc_config(&document, "dev@dkp").expect("config");
        assert_eq!(config["id-token"], "new.id.token");
        assert_eq!(config["refresh-token"], "new-refresh");
        assert_eq!(config["client-secret"], "s3cret");
        // Everything else is as it was.
        let mut restored = document.clone();
        assert!(set_tokens(
            &mut restored,
            "dev@dkp",
            "new-refresh",
            "old.id.token",
            "old-refresh"
        ));
        assert_eq!(restored, before);
    }

    #[test]
    fn set_tokens_refuses_when_someone_else_refreshed() {
        let mut document = parse_document(GENERATED).expect("parse");
        let before = document.clone();
        assert!(!set_tokens(
            &mut document,
            "dev@dkp",
            "a-refresh-token-already-spent",
            "x",
            "y"
        ));
        assert!(!set_tokens(
            &mut document,
            "nobody",
            "old-refresh",
            "x",
            "y"
        ));
        assert!(!set_tokens(&mut document, "other", "old-refresh", "x", "y"));
        assert_eq!(document, before);
    }

    #[test]
    fn rendered_document_reads_back_the_same_and_keeps_quoted_strings() {
        let mut document = parse_document(GENERATED).expect("parse");
        set_tokens(
            &mut document,
            "dev@dkp",
            "old-refresh",
            "eyJhbGciOi.eyJleHAiOjE.sig-_",
            "true",
        );
        let text = render_document(&document).expect("render");
        let back = parse_document(&text).expect("reparse");
        assert_eq!(back, document);
        assert_eq!(back["contexts"][0]["context"]["namespace"], "0123");
        assert_eq!(
            oidc_config(&back, "dev@dkp").expect("config")["refresh-token"],
            "true"
        );
        let long_token = format!("eyJ{}", "a".repeat(900));
        set_tokens(&mut document, "dev@dkp", "true", &long_token, "r2");
        let text = render_document(&document).expect("render");
        assert!(
            text.lines()
                .any(|line| line.trim() == format!("id-token: {long_token}")),
            "a long token is one plain line: {text}"
        );
    }

    #[test]
    fn atomic_replace_keeps_permissions_and_content() {
        let dir = std::env::temp_dir().join(format!("kubectl-mpo-replace-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("config");
        fs::write(&path, "old").expect("write");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).expect("chmod");
        replace_atomically(&path, "new content").expect("replace");
        assert_eq!(fs::read_to_string(&path).expect("read"), "new content");
        assert_eq!(
            fs::metadata(&path).expect("stat").permissions().mode() & 0o777,
            0o640
        );
        let leftovers: Vec<_> = fs::read_dir(&dir)
            .expect("list")
            .filter_map(|entry| entry.ok())
            .filter(|entry| entry.file_name() != "config")
            .collect();
        assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn file_of_user_takes_the_first_file_that_defines_it() {
        let dir = std::env::temp_dir().join(format!("kubectl-mpo-files-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("dir");
        let chooser = dir.join("chooser");
        fs::write(
            &chooser,
            "apiVersion: v1\nkind: Config\ncurrent-context: dev@dkp\n",
        )
        .expect("write");
        let first = dir.join("first");
        fs::write(&first, GENERATED).expect("write");
        let second = dir.join("second");
        fs::write(&second, GENERATED).expect("write");
        let paths = vec![dir.join("missing"), chooser, first.clone(), second];
        assert_eq!(file_of_user(&paths, "dev@dkp"), Some(first));
        assert_eq!(file_of_user(&paths, "nobody"), None);
        let _ = fs::remove_dir_all(&dir);
    }
}
