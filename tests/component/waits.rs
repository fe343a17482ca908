//! Following one override through a watch (`app::wait::watch_object`), across the
//! failures a real API server has: a watch that falls too far behind must list again,
//! and a list without the override means it is gone.

use futures::StreamExt;
use kube::runtime::wait::{Condition, conditions};
use kubectl_mpo::app::wait::watch_object;
use kubectl_mpo::deckhouse::resources::{ModulePullOverride, MpoVersion};

use crate::fake_api::{Answer, FakeApi, events, gone, list, override_object, when};

const LIST: &str = "/apis/deckhouse.io/v1alpha2/modulepulloverrides?";

fn api(fake: &FakeApi) -> kube::Api<ModulePullOverride> {
    kube::Api::all_with(fake.client(), &MpoVersion::V1alpha2)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// The bug `delete --wait` had: the override vanished while the watch was away; the
/// server answered the resumed watch with 410 Gone, the watch listed again, and the
/// list no longer had it. That list is the answer: gone.
#[test]
fn an_override_missing_from_a_relist_is_gone() {
    // The steps are taken in order of the list: the first watch (it asks for a
    // resourceVersion) is answered 410 Gone; the second list is empty.
    let fake = FakeApi::new(vec![
        when(
            &["GET", LIST, "metadata.name%3Decho", "watch=true"],
            events(&[gone()]),
        ),
        when(
            &["GET", LIST, "metadata.name%3Decho"],
            list("10", &[override_object("echo", "uid-1", "9")]),
        ),
        when(&["GET", LIST, "metadata.name%3Decho"], list("20", &[])),
        when(&["GET", LIST, "watch=true"], Answer::Never),
    ]);
    let seen = runtime().block_on(async {
        let config = kube::runtime::watcher::Config::default().timeout(20);
        let stream = watch_object(api(&fake), "echo", config);
        let mut stream = std::pin::pin!(stream);
        let mut seen = Vec::new();
        // The old wait never said "gone" here and waited out its --timeout.
        let deadline = tokio::time::sleep(std::time::Duration::from_secs(10));
        tokio::pin!(deadline);
        while let Some(next) = tokio::select! {
            next = stream.next() => next,
            _ = &mut deadline => None,
        } {
            let gone = matches!(next, Ok(None));
            seen.push(
                next.map(|o| o.and_then(|o| o.metadata.uid))
                    .map_err(|e| e.to_string()),
            );
            if gone {
                break;
            }
        }
        seen
    });
    assert_eq!(
        seen.first(),
        Some(&Ok(Some("uid-1".to_string()))),
        "{seen:?}"
    );
    assert!(
        seen.iter().any(|s| s
            .as_ref()
            .is_err_and(|e| e.contains("410") || e.contains("too old"))),
        "the resumed watch was refused: {seen:?}"
    );
    assert_eq!(seen.last(), Some(&Ok(None)), "{seen:?}");
    let requests = fake.seen.lock().expect("seen").clone();
    let lists = requests
        .iter()
        .filter(|r| !r.contains("watch=true"))
        .count();
    assert_eq!(lists, 2, "listed again after the 410: {requests:?}");
}

/// `delete --wait` waits for the override it deleted: one made again under the same
/// name (another uid) counts as deleted, as `kubectl wait --for=delete` counts it.
#[test]
fn an_override_made_again_under_the_same_name_counts_as_deleted() {
    let object = |uid: &str| -> ModulePullOverride {
        serde_json::from_value(override_object("echo", uid, "1")).expect("object")
    };
    let deleted = conditions::is_deleted::<ModulePullOverride>("uid-1");
    assert!(!deleted.matches_object(Some(&object("uid-1"))));
    assert!(deleted.matches_object(Some(&object("uid-2"))));
    assert!(deleted.matches_object(None));
}
