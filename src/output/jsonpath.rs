//! kubectl's JSONPath templates (`-o jsonpath=…`, `-o custom-columns=…`, `--sort-by`)
//! over the JSON the command prints with `-o json`. kubectl's syntax is a template:
//! text with `{…}` expressions, `{range EXPR}…{end}` loops and `{"\n"}` literals, where
//! an expression starts with `.` (the object) rather than `$`. The expressions
//! themselves are evaluated by `jsonpath-rust` (RFC 9535, which keeps kubectl's
//! `[*]`, `[0]`, `..name` and `[?(@.field=="x")]` forms).

use jsonpath_rust::JsonPath;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Text(String),
    Path(String),
    Range(String, Vec<Node>),
}

/// A parsed kubectl JSONPath template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template(Vec<Node>);

impl Template {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut stack: Vec<(String, Vec<Node>)> = Vec::new();
        let mut current: Vec<Node> = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            let Some(open) = rest.find('{') else {
                current.push(Node::Text(rest.to_string()));
                break;
            };
            if open > 0 {
                current.push(Node::Text(rest[..open].to_string()));
            }
            let close = closing_brace(&rest[open..])
                .ok_or_else(|| format!("unclosed {{ in the JSONPath template {text:?}"))?;
            let expr = rest[open + 1..open + close].trim();
            rest = &rest[open + close + 1..];
            if let Some(path) = expr.strip_prefix("range ") {
                stack.push((query_of(path)?, std::mem::take(&mut current)));
            } else if expr == "end" {
                let (path, outer) = stack
                    .pop()
                    .ok_or_else(|| format!("{{end}} without {{range}} in {text:?}"))?;
                let body = std::mem::replace(&mut current, outer);
                current.push(Node::Range(path, body));
            } else if expr.starts_with('"') {
                let literal: String = serde_json::from_str(expr)
                    .map_err(|err| format!("bad string {expr} in the JSONPath template: {err}"))?;
                current.push(Node::Text(literal));
            } else if expr.is_empty() {
                return Err(format!("empty {{}} in the JSONPath template {text:?}"));
            } else {
                current.push(Node::Path(query_of(expr)?));
            }
        }
        if !stack.is_empty() {
            return Err(format!("{{range}} without {{end}} in {text:?}"));
        }
        Ok(Template(current))
    }

    /// The template as kubectl prints it: each result as text (strings bare, other
    /// values as JSON), several results separated by a space.
    pub fn render(&self, value: &Value) -> Result<String, String> {
        let mut out = String::new();
        render(&self.0, value, &mut out)?;
        Ok(out)
    }

    /// The values the template's single expression selects (custom-columns and
    /// --sort-by take one expression).
    pub fn values<'v>(&self, value: &'v Value) -> Result<Vec<&'v Value>, String> {
        match self.0.as_slice() {
            [Node::Path(path)] => select(value, path),
            _ => Err("expected one JSONPath expression such as .name or {.tag}".into()),
        }
    }

    /// A template of one expression, given with or without braces (`.name`,
    /// `{.name}`), as custom-columns and --sort-by take it.
    pub fn expression(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.starts_with('{') {
            Self::parse(text)
        } else {
            Ok(Template(vec![Node::Path(query_of(text)?)]))
        }
    }
}

/// The offset of the `}` that closes the `{` at the start of `text`, skipping
/// braces inside quoted strings.
fn closing_brace(text: &str) -> Option<usize> {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let mut depth = 0usize;
    for (index, c) in text.char_indices() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' => quote = Some(c),
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(index);
                }
            }
            _ => {}
        }
    }
    None
}

/// kubectl's relaxed expression (`.items[*].name`, `items`, `@.name`) as RFC 9535.
fn query_of(expr: &str) -> Result<String, String> {
    let expr = expr.trim();
    let query = if let Some(rest) = expr.strip_prefix('@') {
        format!("${rest}")
    } else if expr.starts_with('$') {
        expr.to_string()
    } else if expr.starts_with('.') || expr.starts_with('[') {
        format!("${expr}")
    } else {
        format!("$.{expr}")
    };
    // `$.` alone (kubectl's `{.}`) is the whole value.
    let query = if query == "$." { "$".into() } else { query };
    // Checked once here, so that a bad path is reported before any output.
    Value::Null
        .query(&query)
        .map_err(|err| format!("invalid JSONPath {expr:?}: {err}"))?;
    Ok(query)
}

fn select<'v>(value: &'v Value, query: &str) -> Result<Vec<&'v Value>, String> {
    value
        .query(query)
        .map_err(|err| format!("JSONPath {query:?}: {err}"))
}

fn render(nodes: &[Node], value: &Value, out: &mut String) -> Result<(), String> {
    for node in nodes {
        match node {
            Node::Text(text) => out.push_str(text),
            Node::Path(path) => {
                let texts: Vec<String> = select(value, path)?.into_iter().map(text_of).collect();
                out.push_str(&texts.join(" "));
            }
            Node::Range(path, body) => {
                for item in select(value, path)? {
                    // kubectl's range iterates over the elements of a selected list.
                    match item {
                        Value::Array(elements) => {
                            for element in elements {
                                render(body, element, out)?;
                            }
                        }
                        other => render(body, other, out)?,
                    }
                }
            }
        }
    }
    Ok(())
}

/// A value as kubectl's JSONPath prints it: strings bare, others as compact JSON.
pub fn text_of(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// `NAME:.name,TAG:{.tag}` → the columns' headers and expressions.
pub fn custom_columns(spec: &str) -> Result<Vec<(String, Template)>, String> {
    spec.split(',')
        .map(|column| {
            let (header, expr) = column.split_once(':').ok_or_else(|| {
                format!("custom-columns: {column:?} is not HEADER:EXPRESSION (e.g. NAME:.name)")
            })?;
            Ok((header.to_string(), Template::expression(expr)?))
        })
        .collect()
}

/// Orders values as `--sort-by` does: missing first, numbers by value, the rest by text.
pub fn compare(a: Option<&Value>, b: Option<&Value>) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(Value::Number(x)), Some(Value::Number(y))) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Some(x), Some(y)) => text_of(x).cmp(&text_of(y)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn list() -> Value {
        json!({"kind": "StatusList", "items": [
            {"name": "echo", "tag": "main", "sync": "in-sync", "ready": true},
            {"name": "hello", "tag": "v1", "sync": "behind", "ready": false},
        ]})
    }

    #[test]
    fn kubectl_templates() {
        let render = |t: &str| Template::parse(t).unwrap().render(&list()).unwrap();
        assert_eq!(render("{.items[*].name}"), "echo hello");
        assert_eq!(render("{.items[?(@.sync==\"behind\")].name}"), "hello");
        assert_eq!(
            render("{range .items[*]}{.name}={.tag}{\"\\n\"}{end}"),
            "echo=main\nhello=v1\n"
        );
        assert_eq!(render("kind: {.kind}"), "kind: StatusList");
        assert_eq!(render("{.items[0].ready}"), "true");
        assert!(Template::parse("{.items[").is_err());
        assert!(Template::parse("{range .items[*]}{.name}").is_err());
    }

    #[test]
    fn columns_and_sorting() {
        let columns = custom_columns("NAME:.name,TAG:{.tag}").unwrap();
        let item = &list()["items"][1];
        let cells: Vec<String> = columns
            .iter()
            .map(|(_, t)| text_of(t.values(item).unwrap()[0]))
            .collect();
        assert_eq!(cells, ["hello", "v1"]);
        assert!(custom_columns("NAME").is_err());
        assert_eq!(
            compare(Some(&json!(2)), Some(&json!(10))),
            std::cmp::Ordering::Less
        );
    }
}
