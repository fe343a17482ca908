//! The override's history, kept by the plugin in one bounded annotation: every tag the
//! plugin set (create, edit, renew, undo), the digest it ran as, and when it was set
//! and replaced. A tag set with plain kubectl is noticed at the next write (or read)
//! as "changed outside kubectl mpo". `history` lists it; `undo` sets an earlier tag back.

use serde::{Deserialize, Serialize};

use crate::deckhouse::resources::ModulePullOverride;

/// The annotation on the ModulePullOverride that holds the history (JSON).
pub const HISTORY_ANNOTATION: &str = "kubectl-mpo/history";
/// Entries kept: the last ten.
pub const KEEP: usize = 10;
/// `by` of a tag the plugin did not set.
pub const OUTSIDE: &str = "changed outside kubectl mpo";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Revision {
    pub revision: u32,
    pub tag: String,
    /// The digest the tag ran as: the registry's when it was set, then the cluster's
    /// `status.imageDigest` when it was replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// When it was set (RFC 3339).
    pub at: String,
    /// When it was replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced_at: Option<String>,
    /// `create`, `edit`, `renew`, `undo`, or `changed outside kubectl mpo`.
    pub by: String,
}

/// The recorded history, oldest first (empty when absent or unreadable).
pub fn read(mpo: &ModulePullOverride) -> Vec<Revision> {
    mpo.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(HISTORY_ANNOTATION))
        .and_then(|raw| serde_json::from_str(raw).ok())
        .unwrap_or_default()
}

/// The history as it stands, with the override's current tag appended as "changed
/// outside kubectl mpo" when the last entry does not hold it.
pub fn with_current(mpo: &ModulePullOverride) -> Vec<Revision> {
    let mut history = read(mpo);
    let current = &mpo.spec.image_tag;
    if history.last().is_none_or(|last| &last.tag != current) {
        let revision = history.last().map_or(1, |last| last.revision + 1);
        let at = mpo
            .metadata
            .creation_timestamp
            .as_ref()
            .filter(|_| history.is_empty())
            .map(|t| t.0.to_string())
            .unwrap_or_default();
        if let Some(last) = history.last_mut()
            && last.replaced_at.is_none()
        {
            last.replaced_at = Some(String::new());
        }
        history.push(Revision {
            revision,
            tag: current.clone(),
            digest: mpo.image_digest().map(str::to_string),
            at,
            replaced_at: None,
            by: OUTSIDE.into(),
        });
    }
    history
}

/// The annotation value after the plugin sets `tag` (`digest`: the registry's, when
/// known) on `before` (`None`: a new override).
pub fn record(
    before: Option<&ModulePullOverride>,
    tag: &str,
    digest: Option<&str>,
    by: &str,
    now: &str,
) -> String {
    let mut history = before.map(with_current).unwrap_or_default();
    if let (Some(before), Some(last)) = (before, history.last_mut()) {
        // What the replaced tag really ran as.
        if let Some(ran) = before.image_digest() {
            last.digest = Some(ran.to_string());
        }
        last.replaced_at = Some(now.to_string());
    }
    let revision = history.last().map_or(1, |last| last.revision + 1);
    history.push(Revision {
        revision,
        tag: tag.to_string(),
        digest: digest.map(str::to_string),
        at: now.to_string(),
        replaced_at: None,
        by: by.to_string(),
    });
    let drop = history.len().saturating_sub(KEEP);
    history.drain(..drop);
    serde_json::to_string(&history).unwrap_or_else(|_| "[]".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deckhouse::resources::MpoSpec;

    fn mpo(tag: &str, history: Option<String>) -> ModulePullOverride {
        ModulePullOverride {
            api_version: None,
            kind: None,
            metadata: kube::api::ObjectMeta {
                name: Some("echo".into()),
                annotations: history.map(|h| [(HISTORY_ANNOTATION.to_string(), h)].into()),
                ..Default::default()
            },
            spec: MpoSpec {
                image_tag: tag.into(),
                ..Default::default()
            },
            status: None,
        }
    }

    #[test]
    fn records_are_bounded_and_notice_outside_changes() {
        let mut raw = record(None, "t0", Some("sha256:0"), "create", "now");
        for n in 1..15 {
            raw = record(
                Some(&mpo(&format!("t{}", n - 1), Some(raw))),
                &format!("t{n}"),
                None,
                "edit",
                "now",
            );
        }
        let history: Vec<Revision> = serde_json::from_str(&raw).unwrap_or_default();
        assert_eq!(history.len(), KEEP);
        assert_eq!(history.last().map(|r| r.revision), Some(15));

        let outside = with_current(&mpo("manual", Some(raw)));
        assert_eq!(outside.last().map(|r| r.by.as_str()), Some(OUTSIDE));
    }
}
