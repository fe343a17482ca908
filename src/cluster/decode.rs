//! Answers that do not decode into the plugin's types. kube reports them as a bare
//! serde error ("invalid type: floating point `1.5`, expected i64 at line 1 column
//! 912"), which names neither the object nor the field; here the same answer is read
//! once more as plain JSON and decoded object by object to say which object and which
//! field, in words a user can act on.

use std::fmt;

use kube::Api;
use kube::api::{ListParams, ObjectList};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Which object and field of an answer did not decode, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeFailure {
    /// `ModuleConfig`, from the object (or the list's kind without `List`).
    pub kind: String,
    pub name: Option<String>,
    /// `spec.version`; `.` for the object itself.
    pub field: String,
    /// `expected an integer, got 1.5`
    pub problem: String,
}

impl fmt::Display for DecodeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "{} {name}: {}: {}", self.kind, self.field, self.problem),
            None => write!(f, "{}: {}: {}", self.kind, self.field, self.problem),
        }
    }
}

/// Decodes `object` as `K`; on failure, says which field and why.
pub fn check_object<K: DeserializeOwned>(object: &Value, kind_hint: &str) -> Option<DecodeFailure> {
    let error = match serde_path_to_error::deserialize::<_, K>(object) {
        Ok(_) => return None,
        Err(error) => error,
    };
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or(kind_hint)
        .to_string();
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .map(str::to_string);
    Some(DecodeFailure {
        kind,
        name,
        field: error.path().to_string(),
        problem: plain_problem(&error.inner().to_string()),
    })
}

/// The first object of a list answer (`{"kind": "XList", "items": [...]}`) that does
/// not decode as `K`.
pub fn check_list<K: DeserializeOwned>(list: &Value) -> Option<DecodeFailure> {
    let kind = list
        .get("kind")
        .and_then(Value::as_str)
        .map(|kind| kind.strip_suffix("List").unwrap_or(kind).to_string())
        .unwrap_or_else(|| "object".into());
    list.get("items")?
        .as_array()?
        .iter()
        .find_map(|item| check_object::<K>(item, &kind))
}

/// serde's wording ("invalid type: floating point `1.5`, expected i64") in a user's
/// words ("expected an integer, got 1.5").
pub fn plain_problem(message: &str) -> String {
    let Some(rest) = message.strip_prefix("invalid type: ") else {
        return message.to_string();
    };
    let Some((got, expected)) = rest.split_once(", expected ") else {
        return message.to_string();
    };
    // `floating point `1.5``, `integer `7``, `string "yes"`, `map`
    let quoted = |mark: char| {
        got.split_once(mark)
            .and_then(|(_, value)| value.rsplit_once(mark))
            .map(|(value, _)| value.to_string())
    };
    let got = quoted('`')
        .or_else(|| quoted('"').map(|text| format!("{text:?}")))
        .unwrap_or_else(|| got.to_string());
    let expected = match expected.trim() {
        "i64" | "i32" | "u64" | "u32" | "i16" | "u16" | "i8" | "u8" => "an integer",
        "f64" | "f32" => "a number",
        "a boolean" | "bool" => "a boolean",
        "a string" => "a string",
        other => other,
    };
    format!("expected {expected}, got {got}")
}

/// A decode failure as kube reports errors, so that [`crate::cluster::Cluster::api_error`]
/// turns it into the usual decode message.
fn as_kube_error(failure: &DecodeFailure) -> kube::Error {
    kube::Error::SerdeError(<serde_json::Error as serde::de::Error>::custom(
        failure.to_string(),
    ))
}

async fn raw(api_client: kube::Client, url: String) -> Option<Value> {
    let request = http::Request::get(url).body(Vec::new()).ok()?;
    api_client.request::<Value>(request).await.ok()
}

/// `api.list`, with a decode failure named by object and field. The answer is decoded
/// while it arrives (on a blocking thread fed chunk by chunk), so a list of thousands
/// of objects is never held as text beside its objects; unlike kubectl's pages
/// (`--chunk-size`), one request, which the API server serves from its cache.
pub async fn list<K>(api: &Api<K>, params: &ListParams) -> kube::Result<ObjectList<K>>
where
    K: kube::Resource + Clone + DeserializeOwned + fmt::Debug + Send + 'static,
{
    let url = api.resource_url().to_string();
    let request = kube::core::Request::new(&url)
        .list(params)
        .map_err(kube::Error::BuildRequest)?;
    let client = api.clone().into_client();
    let body = client.request_stream(request).await?;
    let (sender, receiver) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
    let decode = tokio::task::spawn_blocking(move || {
        let reader = std::io::BufReader::new(crate::chunks::ChannelReader::new(receiver));
        serde_json::from_reader::<_, ObjectList<K>>(reader)
    });
    let feed = async move {
        use futures::{AsyncBufRead, AsyncBufReadExt};
        futures::pin_mut!(body);
        loop {
            let chunk = body.fill_buf().await?.to_vec();
            if chunk.is_empty() {
                return Ok(());
            }
            body.as_mut().consume(chunk.len());
            if sender.send(chunk).await.is_err() {
                // The decoder stopped (a decode error): it says why.
                return Ok(());
            }
        }
    };
    let (fed, decoded): (std::io::Result<()>, _) = tokio::join!(feed, decode);
    fed.map_err(kube::Error::ReadEvents)?;
    match decoded.map_err(|err| kube::Error::ReadEvents(std::io::Error::other(err)))? {
        Ok(list) => Ok(list),
        Err(original) => {
            let found = raw(client, url)
                .await
                .and_then(|list| check_list::<K>(&list));
            Err(found
                .map(|failure| as_kube_error(&failure))
                .unwrap_or(kube::Error::SerdeError(original)))
        }
    }
}

/// `api.get_opt`, with a decode failure named by field.
pub async fn get_opt<K>(api: &Api<K>, name: &str) -> kube::Result<Option<K>>
where
    K: kube::Resource + Clone + DeserializeOwned + fmt::Debug,
{
    match api.get_opt(name).await {
        Err(kube::Error::SerdeError(original)) => {
            let url = format!("{}/{name}", api.resource_url());
            let found = raw(api.clone().into_client(), url)
                .await
                .and_then(|object| check_object::<K>(&object, "object"));
            Err(found
                .map(|failure| as_kube_error(&failure))
                .unwrap_or(kube::Error::SerdeError(original)))
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Strict {
        spec: StrictSpec,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct StrictSpec {
        version: Option<i64>,
        enabled: Option<bool>,
    }

    #[test]
    fn names_the_object_the_field_and_the_type() {
        let list = serde_json::json!({
            "kind": "ModuleConfigList",
            "items": [
                {"metadata": {"name": "echo"}, "spec": {"version": 1}},
                {"kind": "ModuleConfig", "metadata": {"name": "disabled-module"},
                 "spec": {"enabled": false, "version": 1.5}},
            ],
        });
        let failure = check_list::<Strict>(&list).expect("a failure");
        assert_eq!(
            failure.to_string(),
            "ModuleConfig disabled-module: spec.version: expected an integer, got 1.5"
        );
        // The kind comes from the list when the item has none.
        let list = serde_json::json!({
            "kind": "ModuleConfigList",
            "items": [{"metadata": {"name": "x"}, "spec": {"enabled": "yes"}}],
        });
        assert_eq!(
            check_list::<Strict>(&list).unwrap().to_string(),
            "ModuleConfig x: spec.enabled: expected a boolean, got \"yes\""
        );
        let fine = serde_json::json!({"kind": "ModuleConfigList", "items": [{"spec": {}}]});
        assert!(check_list::<Strict>(&fine).is_none());
    }

    #[test]
    fn the_failure_travels_as_a_kube_serde_error() {
        let failure = DecodeFailure {
            kind: "Module".into(),
            name: Some("echo".into()),
            field: "properties.weight".into(),
            problem: "expected an integer, got x".into(),
        };
        match as_kube_error(&failure) {
            kube::Error::SerdeError(err) => assert_eq!(
                err.to_string(),
                "Module echo: properties.weight: expected an integer, got x"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn other_serde_messages_are_kept() {
        assert_eq!(
            plain_problem("missing field `spec`"),
            "missing field `spec`"
        );
        assert_eq!(
            plain_problem("invalid type: map, expected a string"),
            "expected a string, got map"
        );
    }
}
