//! `kubectl mpo registry ...`: the docs' crane recipes, with the ModuleSource's own repo,
//! credentials, CA and scheme.

use serde::Serialize;

use crate::app::images::{APP_IMAGES, app_images};
use crate::app::overrides::Overrides;
use crate::app::sources::{self, REGISTRY_TIMEOUT, registry_error};
use crate::app::tags::{self as app_tags, TagDetail};
use crate::app::{Ctx, Outcome};
use crate::cli::{
    ImageArg, NamesFormat, RegistryArgs, RegistryCommand, RegistryTagsArgs, TagSort, TagsFormat,
};
use crate::deckhouse::layout::{self, CHANNELS, is_hash_tag};
use crate::error::{Error, Result};
use crate::output::Tone;
use crate::registry::{
    ImageLimits, ImageTree, ReadPlan, RegistryTarget, SourceRegistry, human_bytes,
};

pub async fn run(ctx: &Ctx, command: RegistryCommand) -> Result<Outcome> {
    match command {
        RegistryCommand::Modules(args) => modules(ctx, &args.common, args.output).await,
        RegistryCommand::Tags(args) => tags(ctx, &args).await,
        RegistryCommand::Files(args) => {
            let limits = ImageLimits::from(&args.limits);
            files(ctx, &args.image, &args.common, &limits, args.output).await
        }
        RegistryCommand::Cat(args) => {
            let limits = ImageLimits::from(&args.limits);
            cat(
                ctx,
                &args.image,
                &args.path,
                &args.common,
                &limits,
                args.raw,
            )
            .await
        }
        RegistryCommand::Images(args) => {
            let limits = ImageLimits::from(&args.limits);
            images(ctx, &args.image, &args.common, &limits, args.output).await
        }
        RegistryCommand::Releases(args) => {
            releases(ctx, &args.module, &args.common, args.output).await
        }
    }
}

struct Target {
    /// `None` with `--registry-repo`: the registry is read without the cluster.
    overrides: Option<Overrides>,
    source: RegistryTarget,
    client: SourceRegistry,
}

async fn target(ctx: &Ctx, module: Option<&str>, common: &RegistryArgs) -> Result<Target> {
    let fallback = sources::fallback(&common.fallback.spec())?;
    if fallback.is_some() && common.source.is_some() {
        return Err(Error::usage(
            "--source and --registry-repo exclude each other: choose a ModuleSource or a repo",
        ));
    }
    // With --registry-repo the registry is all there is to ask: no cluster is needed,
    // and none is contacted (as crane needs none).
    let (overrides, source) = match fallback {
        Some(fallback) => {
            fallback.announce(ctx);
            (None, fallback.target)
        }
        None => {
            let overrides = Overrides::connect(ctx).await?;
            let source = sources::choose_target(
                ctx,
                &overrides.cluster,
                module,
                common.source.as_deref(),
                None,
            )
            .await?;
            (Some(overrides), source)
        }
    };
    let client = sources::client_for(&source, REGISTRY_TIMEOUT)?;
    Ok(Target {
        overrides,
        source,
        client,
    })
}

fn print_list<T: Serialize>(
    ctx: &Ctx,
    output: Option<NamesFormat>,
    header: &str,
    items: &[String],
    document: &T,
) -> Result<()> {
    match output {
        Some(NamesFormat::Json) => ctx.printer.json(document),
        Some(NamesFormat::Yaml) => ctx.printer.yaml(document),
        Some(NamesFormat::Name) => {
            for item in items {
                ctx.printer.line(crate::output::inline(item));
            }
            Ok(())
        }
        None => {
            let rows: Vec<Vec<(String, Tone)>> = items
                .iter()
                .map(|i| vec![(i.clone(), Tone::Plain)])
                .collect();
            ctx.printer.table(&[header], &rows);
            Ok(())
        }
    }
}

async fn modules(ctx: &Ctx, common: &RegistryArgs, output: Option<NamesFormat>) -> Result<Outcome> {
    let target = target(ctx, None, common).await?;
    let modules = target
        .client
        .tags("")
        .await
        .map_err(|err| registry_error(&target.source, None, err))?;
    #[derive(Serialize)]
    struct Doc<'a> {
        source: &'a str,
        repository: &'a str,
        modules: &'a [String],
    }
    let doc = Doc {
        source: &target.source.name,
        repository: target.client.repo(),
        modules: &modules,
    };
    print_list(ctx, output, "MODULE", &modules, &doc)?;
    Ok(Outcome::Success)
}

async fn tags(ctx: &Ctx, args: &RegistryTagsArgs) -> Result<Outcome> {
    let module: &str = &args.module;
    let target = target(ctx, Some(module), &args.common).await?;
    let every_tag = target
        .client
        .tags(module)
        .await
        .map_err(|err| registry_error(&target.source, Some(module), err))?;
    let mut names: Vec<String> = every_tag
        .iter()
        .filter(|tag| args.all || !is_hash_tag(tag))
        .filter(|tag| args.include.as_ref().is_none_or(|re| re.is_match(tag)))
        .cloned()
        .collect();
    #[derive(Serialize)]
    struct Doc<'a> {
        source: &'a str,
        repository: String,
        tags: &'a [String],
        details: &'a [TagDetail],
    }
    // Names only: no lookups (completion asks for these).
    if args.output == Some(TagsFormat::Name) {
        if args.sort == TagSort::Name {
            names.sort();
        }
        for name in &names {
            ctx.printer.line(crate::output::inline(name));
        }
        return Ok(Outcome::Success);
    }
    let current = match &target.overrides {
        Some(overrides) => overrides
            .get(module)
            .await
            .ok()
            .flatten()
            .map(|o| o.spec.image_tag),
        None => None,
    };
    let spinner = ctx.printer.spinner(format!(
        "reading {} tags of {}/{module}",
        names.len(),
        target.client.repo()
    ));
    let details = app_tags::details(&target.client, module, &names, current.as_deref());
    // With --all, application images are told by the digests the builds list in
    // images_digests.json (every build of the repository, not only those shown).
    let listed = async {
        if !args.all {
            return (Default::default(), 0);
        }
        let builds: Vec<String> = every_tag
            .iter()
            .filter(|tag| !is_hash_tag(tag))
            .cloned()
            .collect();
        app_tags::listed_app_images(&target.client, module, &builds).await
    };
    let (mut details, (listed, unreadable)) = tokio::join!(details, listed);
    drop(spinner);
    app_tags::mark_app_images(&mut details, &listed);
    if unreadable > 0 {
        ctx.printer.warn(format!(
            "{unreadable} build(s) of {module} could not be read: the application images they list show as unlisted"
        ));
    }
    app_tags::sort(&mut details, args.sort == TagSort::Name);
    let ordered: Vec<String> = details.iter().map(|d| d.tag.clone()).collect();
    let doc = Doc {
        source: &target.source.name,
        repository: format!("{}/{module}", target.client.repo()),
        tags: &ordered,
        details: &details,
    };
    match args.output {
        Some(TagsFormat::Json) => ctx.printer.json(&doc)?,
        Some(TagsFormat::Yaml) => ctx.printer.yaml(&doc)?,
        Some(TagsFormat::Wide) => render_tags(&ctx.printer, &details, true),
        Some(TagsFormat::Name) | None => render_tags(&ctx.printer, &details, false),
    }
    Ok(Outcome::Success)
}

fn render_tags(printer: &crate::output::Printer, details: &[TagDetail], wide: bool) {
    let mut headers = vec!["TAG", "KIND", "DIGEST", "CREATED", "SIZE"];
    if wide {
        headers.extend(["SOURCE", "REVISION"]);
    }
    let rows: Vec<Vec<(String, Tone)>> = details
        .iter()
        .map(|d| {
            let tag = if d.current {
                format!("{} (current)", d.tag)
            } else {
                d.tag.clone()
            };
            let digest = match (&d.digest, wide) {
                (Some(digest), true) => digest.clone(),
                (Some(digest), false) => crate::output::short_digest(digest),
                (None, _) => d.error.clone().unwrap_or_else(|| "-".into()),
            };
            let mut row = vec![
                (tag, if d.current { Tone::Good } else { Tone::Plain }),
                (
                    match &d.image {
                        Some(image) => format!("{} ({image})", d.kind),
                        None => d.kind.to_string(),
                    },
                    Tone::Plain,
                ),
                (
                    digest,
                    if d.error.is_some() {
                        Tone::Bad
                    } else {
                        Tone::Plain
                    },
                ),
                (
                    d.created
                        .as_deref()
                        .map(|c| format!("{c} ({} ago)", crate::output::age_of(Some(c))))
                        .unwrap_or_else(|| "-".into()),
                    Tone::Plain,
                ),
                (
                    d.size
                        .map(app_tags::size_text)
                        .unwrap_or_else(|| "-".into()),
                    Tone::Plain,
                ),
            ];
            if wide {
                row.push((
                    d.provenance.source.clone().unwrap_or_else(|| "-".into()),
                    Tone::Plain,
                ));
                row.push((
                    d.provenance.revision.clone().unwrap_or_else(|| "-".into()),
                    Tone::Plain,
                ));
            }
            row
        })
        .collect();
    printer.table(&headers, &rows);
}

/// The module's override; with `--registry-repo` the cluster is asked only here, when
/// the override's tag is wanted.
async fn current_override(
    ctx: &Ctx,
    target: &Target,
    module: &str,
) -> Result<Option<crate::deckhouse::resources::ModulePullOverride>> {
    match &target.overrides {
        Some(overrides) => overrides.get(module).await,
        None => Overrides::connect(ctx).await?.get(module).await,
    }
}

/// `MODULE[:TAG|@DIGEST]`; without either, the override's tag.
async fn image_target(
    ctx: &Ctx,
    image: &ImageArg,
    common: &RegistryArgs,
) -> Result<(Target, String, String)> {
    let module = image.module.to_string();
    let target = target(ctx, Some(&module), common).await?;
    let tag = match image.reference() {
        Some(reference) => reference,
        None => match current_override(ctx, &target, &module).await? {
            Some(mpo) => {
                ctx.printer.note(format!(
                    "using tag {} of override {module}",
                    mpo.spec.image_tag
                ));
                mpo.spec.image_tag
            }
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
    tree.map_err(|err| registry_error(&target.source, Some(module), err))
}

async fn files(
    ctx: &Ctx,
    image: &ImageArg,
    common: &RegistryArgs,
    limits: &ImageLimits,
    output: Option<NamesFormat>,
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
    match output {
        Some(NamesFormat::Json) => ctx.printer.json(&doc)?,
        Some(NamesFormat::Yaml) => ctx.printer.yaml(&doc)?,
        Some(NamesFormat::Name) => tree
            .files
            .keys()
            .for_each(|path| ctx.printer.line(crate::output::inline(path))),
        None => {
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
    image: &ImageArg,
    path: &str,
    common: &RegistryArgs,
    limits: &ImageLimits,
    raw: bool,
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
    // A file is data from the registry: on a terminal its control characters are
    // shown, not obeyed, unless --raw; into a pipe or a file it goes as it is.
    if raw || !ctx.printer.stdout_is_terminal() {
        ctx.printer.raw(content);
    } else {
        ctx.printer
            .raw(crate::output::bytes_for_terminal(content).as_bytes());
    }
    Ok(Outcome::Success)
}

async fn images(
    ctx: &Ctx,
    image: &ImageArg,
    common: &RegistryArgs,
    limits: &ImageLimits,
    output: Option<NamesFormat>,
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
    // A list document as `status -o json` prints one: apiVersion, kind, items.
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Doc<'a> {
        api_version: &'static str,
        kind: &'static str,
        source: &'a str,
        image: String,
        items: &'a [Entry],
    }
    let doc = || Doc {
        api_version: "kubectl-mpo/v1",
        kind: "AppImageList",
        source: &target.source.name,
        image: target.client.image_name(&module, &tag),
        items: &entries,
    };
    match output {
        Some(NamesFormat::Json) => ctx.printer.json(&doc())?,
        Some(NamesFormat::Yaml) => ctx.printer.yaml(&doc())?,
        Some(NamesFormat::Name) => entries.iter().for_each(|e| ctx.printer.line(&e.image)),
        None => {
            let rows: Vec<Vec<(String, Tone)>> = entries
                .iter()
                .map(|e| vec![(e.name.clone(), Tone::Plain), (e.digest.clone(), Tone::Dim)])
                .collect();
            ctx.printer.table(&["NAME", "DIGEST"], &rows);
        }
    }
    Ok(Outcome::Success)
}

async fn releases(
    ctx: &Ctx,
    module: &str,
    common: &RegistryArgs,
    output: Option<NamesFormat>,
) -> Result<Outcome> {
    let target = target(ctx, Some(module), common).await?;
    let repository = layout::release_repository(module);
    let tags = target
        .client
        .tags(&repository)
        .await
        .map_err(|err| registry_error(&target.source, Some(module), err))?;
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
                    .and_then(layout::release_version)
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
    match output {
        Some(NamesFormat::Json) => ctx.printer.json(&doc)?,
        Some(NamesFormat::Yaml) => ctx.printer.yaml(&doc)?,
        Some(NamesFormat::Name) => tags
            .iter()
            .for_each(|t| ctx.printer.line(crate::output::inline(t))),
        None => {
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

/// The hints a registry error prints name commands this command line takes.
#[cfg(test)]
mod registry_hint_tests {
    use std::time::Duration;

    use clap::Parser;

    use crate::app::sources::registry_error;
    use crate::registry::{RegistryError, RegistryErrorKind, RegistryTarget};

    /// The command of a hint (`...: kubectl mpo ARGS`), parsed as the binary would.
    fn parses(hint: &str) -> bool {
        let Some((_, command)) = hint.split_once("kubectl mpo ") else {
            return true;
        };
        let words = std::iter::once("kubectl-mpo").chain(command.split_whitespace());
        crate::cli::Cli::try_parse_from(words).is_ok()
    }

    #[test]
    fn registry_hints_name_the_registry_used_and_parse() {
        let fallback =
            RegistryTarget::from_docker_config("reg.io/modules", None, None, None).expect("target");
        let mut source = RegistryTarget::with_docker_cfg("reg.io/modules", None, None, None);
        source.name = "test".into();
        for kind in [
            RegistryErrorKind::NotFound,
            RegistryErrorKind::Unauthorized,
            RegistryErrorKind::Config,
            RegistryErrorKind::Limit,
        ] {
            for module in [Some("echo"), None] {
                let err = RegistryError::timed_out("x", Duration::from_secs(1));
                let err = RegistryError { kind, ..err };
                let via_fallback = registry_error(&fallback, module, err.clone());
                let hint = via_fallback.hint.unwrap_or_default();
                assert!(
                    !hint.contains("--source") && !hint.contains("explain"),
                    "{hint}"
                );
                assert!(parses(&hint), "{hint}");
                let hint = registry_error(&source, module, err)
                    .hint
                    .unwrap_or_default();
                assert!(parses(&hint), "{hint}");
            }
        }
        // An unknown repository sends the user to the modules that exist, never back to
        // the `registry tags` command that just failed.
        let unknown = RegistryError {
            kind: RegistryErrorKind::NotFound,
            message:
                "list tags of modules/echo: NameUnknown: repository name not known to registry"
                    .into(),
        };
        for (target, flag) in [
            (&source, "--source test"),
            (&fallback, "--registry-repo reg.io/modules"),
        ] {
            let hint = registry_error(target, Some("echo"), unknown.clone())
                .hint
                .unwrap_or_default();
            assert!(
                hint.ends_with(&format!("kubectl mpo registry modules {flag}")),
                "{hint}"
            );
            assert!(parses(&hint), "{hint}");
        }
    }
}
