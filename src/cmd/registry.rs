//! `kubectl mpo registry ...`: the docs' crane recipes, with the ModuleSource's own repo,
//! credentials, CA and scheme.

use std::io::Write;

use serde::Serialize;
use serde_json::Value;

use super::shared::Overrides;
use super::{Ctx, Outcome, inspect};
use crate::cli::{OutputFormat, RegistryArgs, RegistryCommand};
use crate::deckhouse::resources::ModuleSource;
use crate::error::{Error, Result};
use crate::output::Tone;
use crate::registry::{ImageLimits, ImageTree, ReadPlan, SourceRegistry, human_bytes};
use crate::validate;

/// Release channels as Deckhouse tags them (kebab case).
pub const CHANNELS: [&str; 6] = [
    "alpha",
    "beta",
    "early-access",
    "stable",
    "rock-solid",
    "lts",
];

/// Application images are tagged with long hashes; module images with branches or semver.
pub fn is_hash_tag(tag: &str) -> bool {
    tag.len() >= 32 && tag.chars().all(|c| c.is_ascii_hexdigit())
}

pub async fn run(ctx: &Ctx, command: RegistryCommand) -> Result<Outcome> {
    match command {
        RegistryCommand::Modules(args) => modules(ctx, &args.common).await,
        RegistryCommand::Tags(args) => tags(ctx, &args.module, args.all, &args.common).await,
        RegistryCommand::Files(args) => {
            let limits = inspect::image_limits(&args.limits)?;
            files(ctx, &args.image, &args.common, &limits).await
        }
        RegistryCommand::Cat(args) => {
            let limits = inspect::image_limits(&args.limits)?;
            cat(ctx, &args.image, &args.path, &args.common, &limits).await
        }
        RegistryCommand::Images(args) => {
            let limits = inspect::image_limits(&args.limits)?;
            images(ctx, &args.image, &args.common, &limits).await
        }
        RegistryCommand::Releases(args) => releases(ctx, &args.module, &args.common).await,
    }
}

struct Target {
    overrides: Overrides,
    source: ModuleSource,
    client: SourceRegistry,
}

async fn target(ctx: &Ctx, module: Option<&str>, common: &RegistryArgs) -> Result<Target> {
    if let Some(module) = module {
        validate::module_name(module)?;
    }
    if let Some(source) = &common.source {
        validate::module_name(source).map_err(|err| err.context("--source"))?;
    }
    let fallback = inspect::fallback_source(&common.fallback)?;
    if fallback.is_some() && common.source.is_some() {
        return Err(Error::usage(
            "--source and --registry-repo exclude each other: choose a ModuleSource or a repo",
        ));
    }
    let overrides = Overrides::connect(ctx).await?;
    let source = inspect::choose_source(
        ctx,
        &overrides.cluster,
        module,
        common.source.as_deref(),
        fallback.as_ref(),
    )
    .await?;
    let client = inspect::client_for(&source, inspect::REGISTRY_TIMEOUT)?;
    Ok(Target {
        overrides,
        source,
        client,
    })
}

fn print_list<T: Serialize>(
    ctx: &Ctx,
    output: Option<OutputFormat>,
    header: &str,
    items: &[String],
    document: &T,
) -> Result<()> {
    match output {
        Some(OutputFormat::Json) => ctx.printer.json(document),
        Some(OutputFormat::Yaml) => ctx.printer.yaml(document),
        Some(OutputFormat::Name) => {
            for item in items {
                ctx.printer.line(item);
            }
            Ok(())
        }
        _ => {
            let rows: Vec<Vec<(String, Tone)>> = items
                .iter()
                .map(|i| vec![(i.clone(), Tone::Plain)])
                .collect();
            ctx.printer.table(&[header], &rows);
            Ok(())
        }
    }
}

async fn modules(ctx: &Ctx, common: &RegistryArgs) -> Result<Outcome> {
    let target = target(ctx, None, common).await?;
    let modules = target
        .client
        .tags("")
        .await
        .map_err(|err| inspect::registry_error(&target.source, err))?;
    #[derive(Serialize)]
    struct Doc<'a> {
        source: &'a str,
        repo: &'a str,
        modules: &'a [String],
    }
    let doc = Doc {
        source: target.source.metadata.name.as_deref().unwrap_or_default(),
        repo: target.client.repo(),
        modules: &modules,
    };
    print_list(ctx, common.output, "MODULE", &modules, &doc)?;
    Ok(Outcome::Success)
}

async fn tags(ctx: &Ctx, module: &str, all: bool, common: &RegistryArgs) -> Result<Outcome> {
    let target = target(ctx, Some(module), common).await?;
    let tags: Vec<String> = target
        .client
        .tags(module)
        .await
        .map_err(|err| inspect::registry_error(&target.source, err))?
        .into_iter()
        .filter(|tag| all || !is_hash_tag(tag))
        .collect();
    #[derive(Serialize)]
    struct Doc<'a> {
        source: &'a str,
        repository: String,
        tags: &'a [String],
    }
    let doc = Doc {
        source: target.source.metadata.name.as_deref().unwrap_or_default(),
        repository: format!("{}/{module}", target.client.repo()),
        tags: &tags,
    };
    print_list(ctx, common.output, "TAG", &tags, &doc)?;
    Ok(Outcome::Success)
}

/// `MODULE[:TAG]`; without a tag, the override's tag.
async fn image_target(
    ctx: &Ctx,
    image: &str,
    common: &RegistryArgs,
) -> Result<(Target, String, String)> {
    let (module, tag) = match image.split_once(':') {
        Some((module, tag)) => {
            validate::image_tag(tag)?;
            (module.to_string(), Some(tag.to_string()))
        }
        None => (image.to_string(), None),
    };
    let target = target(ctx, Some(&module), common).await?;
    let tag = match tag {
        Some(tag) => tag,
        None => match target.overrides.get(&module).await? {
            Some(mpo) => mpo.spec.image_tag,
            None => {
                return Err(Error::usage(format!(
                    "no override for {module}: say which tag, as {module}:TAG"
                ))
                .with_hint(format!(
                    "list the tags with: kubectl mpo registry tags {module}"
                )));
            }
        },
    };
    Ok((target, module, tag))
}

async fn pull(
    ctx: &Ctx,
    target: &Target,
    module: &str,
    tag: &str,
    limits: &ImageLimits,
    plan: &ReadPlan,
) -> Result<ImageTree> {
    let spinner = ctx
        .printer
        .spinner(format!("pulling {}", target.client.image_name(module, tag)));
    let tree = target.client.image_tree(module, tag, limits, plan).await;
    drop(spinner);
    tree.map_err(|err| inspect::registry_error(&target.source, err))
}

async fn files(
    ctx: &Ctx,
    image: &str,
    common: &RegistryArgs,
    limits: &ImageLimits,
) -> Result<Outcome> {
    let (target, module, tag) = image_target(ctx, image, common).await?;
    let tree = pull(ctx, &target, &module, &tag, limits, &ReadPlan::default()).await?;
    #[derive(Serialize)]
    struct File<'a> {
        path: &'a str,
        size: u64,
    }
    #[derive(Serialize)]
    struct Doc<'a> {
        image: String,
        digest: &'a str,
        files: Vec<File<'a>>,
    }
    let doc = Doc {
        image: target.client.image_name(&module, &tag),
        digest: &tree.digest,
        files: tree
            .files
            .iter()
            .map(|(path, file)| File {
                path,
                size: file.size,
            })
            .collect(),
    };
    match common.output {
        Some(OutputFormat::Json) => ctx.printer.json(&doc)?,
        Some(OutputFormat::Yaml) => ctx.printer.yaml(&doc)?,
        Some(OutputFormat::Name) => tree.files.keys().for_each(|path| ctx.printer.line(path)),
        _ => {
            let rows: Vec<Vec<(String, Tone)>> = doc
                .files
                .iter()
                .map(|f| {
                    vec![
                        (f.path.to_string(), Tone::Plain),
                        (f.size.to_string(), Tone::Dim),
                    ]
                })
                .collect();
            ctx.printer.table(&["PATH", "SIZE"], &rows);
        }
    }
    Ok(Outcome::Success)
}

async fn cat(
    ctx: &Ctx,
    image: &str,
    path: &str,
    common: &RegistryArgs,
    limits: &ImageLimits,
) -> Result<Outcome> {
    let (target, module, tag) = image_target(ctx, image, common).await?;
    let wanted = path.trim_start_matches("./").trim_start_matches('/');
    let tree = pull(
        ctx,
        &target,
        &module,
        &tag,
        limits,
        &ReadPlan::keep([wanted]),
    )
    .await?;
    let file = tree.files.get(wanted).ok_or_else(|| {
        Error::runtime(format!(
            "{wanted} is not in {}",
            target.client.image_name(&module, &tag)
        ))
        .with_hint(format!(
            "list the files with: kubectl mpo registry files {module}:{tag}"
        ))
    })?;
    let content = file.content.as_deref().ok_or_else(|| {
        Error::runtime(format!(
            "{wanted} in {} is {} bytes, over the {} limit for one file",
            target.client.image_name(&module, &tag),
            file.size,
            human_bytes(limits.max_file_bytes)
        ))
        .with_hint("if the file is genuine, raise the cap with --max-file-size")
    })?;
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(content)
        .and_then(|()| stdout.flush())
        .map_err(|err| Error::runtime(format!("writing to stdout: {err}")))?;
    Ok(Outcome::Success)
}

/// The application images of a module image, by name.
pub const APP_IMAGES: &str = "images_digests.json";

/// `images_digests.json` as name -> digest pairs.
pub fn app_images(tree: &ImageTree) -> Result<Vec<(String, String)>> {
    let Some(file) = tree.files.get(APP_IMAGES) else {
        return Ok(Vec::new());
    };
    let raw = file.content.as_deref().ok_or_else(|| {
        Error::runtime(format!(
            "{APP_IMAGES} is {} bytes, over the limit for one file",
            file.size
        ))
        .with_hint("if the file is genuine, raise the cap with --max-file-size")
    })?;
    let value: Value = serde_json::from_slice(raw)
        .map_err(|err| Error::runtime(format!("images_digests.json is not valid JSON: {err}")))?;
    let map = value
        .as_object()
        .ok_or_else(|| Error::runtime("images_digests.json is not a JSON object"))?;
    Ok(map
        .iter()
        .map(|(name, digest)| {
            (
                name.clone(),
                digest.as_str().unwrap_or_default().to_string(),
            )
        })
        .collect())
}

async fn images(
    ctx: &Ctx,
    image: &str,
    common: &RegistryArgs,
    limits: &ImageLimits,
) -> Result<Outcome> {
    let (target, module, tag) = image_target(ctx, image, common).await?;
    let plan = ReadPlan::keep([APP_IMAGES]);
    let tree = pull(ctx, &target, &module, &tag, limits, &plan).await?;
    let images = app_images(&tree)?;
    #[derive(Serialize)]
    struct Entry {
        name: String,
        digest: String,
        image: String,
    }
    let entries: Vec<Entry> = images
        .into_iter()
        .map(|(name, digest)| Entry {
            image: target.client.image_name(&module, &digest),
            name,
            digest,
        })
        .collect();
    match common.output {
        Some(OutputFormat::Json) => ctx.printer.json(&entries)?,
        Some(OutputFormat::Yaml) => ctx.printer.yaml(&entries)?,
        Some(OutputFormat::Name) => entries.iter().for_each(|e| ctx.printer.line(&e.image)),
        _ => {
            let rows: Vec<Vec<(String, Tone)>> = entries
                .iter()
                .map(|e| vec![(e.name.clone(), Tone::Plain), (e.digest.clone(), Tone::Dim)])
                .collect();
            ctx.printer.table(&["NAME", "DIGEST"], &rows);
        }
    }
    Ok(Outcome::Success)
}

async fn releases(ctx: &Ctx, module: &str, common: &RegistryArgs) -> Result<Outcome> {
    let target = target(ctx, Some(module), common).await?;
    let repository = format!("{module}/release");
    let tags = target
        .client
        .tags(&repository)
        .await
        .map_err(|err| inspect::registry_error(&target.source, err))?;
    let channels: Vec<&str> = CHANNELS
        .iter()
        .copied()
        .filter(|c| tags.iter().any(|t| t == c))
        .collect();
    let lookups = channels.iter().map(|channel| {
        let client = &target.client;
        let repository = repository.clone();
        async move {
            let limits = ImageLimits::default();
            let plan = ReadPlan::keep(["version.json"]);
            let version = match client
                .image_tree(&repository, channel, &limits, &plan)
                .await
            {
                Ok(tree) => tree
                    .content("version.json")
                    .and_then(|raw| serde_json::from_slice::<Value>(raw).ok())
                    .and_then(|v| v.get("version").and_then(Value::as_str).map(str::to_string))
                    .unwrap_or_else(|| "<no version.json>".into()),
                Err(err) => format!("<{}>", err.message),
            };
            (channel.to_string(), version)
        }
    });
    let pointed: Vec<(String, String)> = futures::future::join_all(lookups).await;
    let versions: Vec<String> = tags
        .iter()
        .filter(|t| !CHANNELS.contains(&t.as_str()))
        .cloned()
        .collect();
    #[derive(Serialize)]
    struct Doc {
        repository: String,
        channels: std::collections::BTreeMap<String, String>,
        versions: Vec<String>,
    }
    let doc = Doc {
        repository: format!("{}/{repository}", target.client.repo()),
        channels: pointed.iter().cloned().collect(),
        versions: versions.clone(),
    };
    match common.output {
        Some(OutputFormat::Json) => ctx.printer.json(&doc)?,
        Some(OutputFormat::Yaml) => ctx.printer.yaml(&doc)?,
        Some(OutputFormat::Name) => tags.iter().for_each(|t| ctx.printer.line(t)),
        _ => {
            let rows: Vec<Vec<(String, Tone)>> = pointed
                .iter()
                .map(|(c, v)| vec![(c.clone(), Tone::Plain), (v.clone(), Tone::Good)])
                .collect();
            ctx.printer.table(&["CHANNEL", "VERSION"], &rows);
            ctx.printer
                .line(format!("versions: {}", versions.join(", ")));
        }
    }
    Ok(Outcome::Success)
}
