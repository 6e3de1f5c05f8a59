//! `hoist previews list|prune` (issue #16). A preview is an independent hoist site under the
//! target's previews prefix (`_previews/NAME/`), made by `hoist deploy --preview NAME`; it is
//! known by its manifest, `_previews/NAME/.hoist/manifest.json`, whose last-modified time is
//! when it was last deployed. Pruning deletes every key of a preview through the deploy's own
//! lock, guard (`max_deletes`, `--force`), dry run and delete phase.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use futures::StreamExt;

use super::error::{DeployError, Failure, GuardError};
use super::plan::{Action, Op, Phase, Plan, Reason};
use super::settings::{DeploySettings, check_preview_name};
use super::{Deploy, Ending, guard, locked, open_store, outcome};
use crate::cli::{BuildArgs, ChangeArgs, DeployArgs, OutputFormat, PreviewsAction, PreviewsArgs};
use crate::interrupt::Interrupt;
use crate::key::Key;
use crate::report::{Printer, escape};
use crate::store::{ListHint, Listing, Store};

/// One preview of the target.
#[derive(Debug, Clone, serde::Serialize)]
struct Found {
    name: String,
    /// When its manifest was last written.
    deployed: Option<crate::clock::Timestamp>,
    url: Option<String>,
    /// Whether `previews.expire_after` has passed since.
    expired: bool,
}

/// Runs `hoist previews`.
pub(crate) async fn previews(
    args: &PreviewsArgs,
    interrupt: &Interrupt,
) -> Result<(), DeployError> {
    match &args.action {
        PreviewsAction::List { target } => list(target, interrupt).await,
        PreviewsAction::Prune {
            names,
            older_than,
            target,
            change,
        } => {
            Box::pin(prune(
                names,
                older_than.as_deref(),
                target,
                change,
                interrupt,
            ))
            .await
        }
    }
}

fn site_args(
    target: &crate::cli::TargetArgs,
    change: &ChangeArgs,
    name: Option<&str>,
) -> DeployArgs {
    DeployArgs {
        target: target.clone(),
        change: change.clone(),
        build: BuildArgs {
            preview: name.map(str::to_string),
            ..BuildArgs::default()
        },
    }
}

/// The previews under the production target, by name.
async fn find(settings: &DeploySettings, store: &dyn Store) -> Result<Vec<Found>, DeployError> {
    let marker = "/.hoist/manifest.json";
    let prefix = settings.previews.prefix.as_str();
    let mut found = BTreeMap::new();
    let mut listing = store.list(ListHint::none());
    while let Some(entry) = listing.next().await {
        let Listing::Object(meta) = entry? else {
            continue;
        };
        let Some(name) = meta
            .key
            .as_str()
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix(marker))
        else {
            continue;
        };
        if check_preview_name(name).is_err() {
            continue;
        }
        let expired = meta.last_modified.is_some_and(|at| {
            SystemTime::now()
                .duration_since(at)
                .is_ok_and(|age| age >= settings.previews.expire_after)
        });
        found.insert(
            name.to_string(),
            Found {
                name: name.to_string(),
                deployed: meta.last_modified.map(crate::clock::Timestamp::from),
                url: settings
                    .previews
                    .url
                    .as_ref()
                    .map(|url| url.replace("{name}", name)),
                expired,
            },
        );
    }
    Ok(found.into_values().collect())
}

/// `hoist previews list`: one line per preview (or a JSON document, or a Markdown table).
async fn list(target: &crate::cli::TargetArgs, interrupt: &Interrupt) -> Result<(), DeployError> {
    let settings =
        DeploySettings::resolve_target(&site_args(target, &ChangeArgs::default(), None))?;
    let printer = Printer::new(settings.output, settings.quiet);
    let (store, _session) = open_store(&settings, interrupt).await;
    let found = find(&settings, store.as_ref()).await?;
    match printer.format() {
        OutputFormat::Json => {
            let document = serde_json::json!({
                "schema": super::report::SCHEMA,
                "status": "ok",
                "target": store.url(None),
                "previews": found,
            });
            printer.data(&serde_json::to_string_pretty(&document).expect("previews serialize"));
        }
        OutputFormat::Markdown => {
            use super::report::markdown::{cell, code};
            let mut out = format!("### hoist: previews of {}\n\n", code(&store.url(None)));
            out.push_str("| preview | last deployed | address | expired |\n|---|---|---|---|\n");
            for p in &found {
                out.push_str(&format!(
                    "| {} | {} | {} | {} |\n",
                    code(&p.name),
                    p.deployed
                        .as_ref()
                        .map_or("-".to_string(), ToString::to_string),
                    p.url.as_deref().map_or(String::new(), cell),
                    if p.expired { "yes" } else { "no" }
                ));
            }
            printer.data(out.trim_end());
        }
        OutputFormat::Human => {
            if found.is_empty() {
                printer.data(&format!("{}: no previews", escape(&store.url(None))));
            }
            for p in &found {
                printer.data(&format!(
                    "{:<24}  {}  {}{}",
                    escape(&p.name),
                    p.deployed
                        .as_ref()
                        .map_or("-".to_string(), ToString::to_string),
                    p.url
                        .as_deref()
                        .map_or(String::new(), |u| escape(u).into_owned()),
                    if p.expired { "  (expired)" } else { "" }
                ));
            }
        }
    }
    Ok(())
}

/// `hoist previews prune [NAME…] [--older-than D]`: the named previews, or those not deployed
/// for `--older-than` (default `previews.expire_after`).
async fn prune(
    names: &[String],
    older_than: Option<&str>,
    target: &crate::cli::TargetArgs,
    change: &ChangeArgs,
    interrupt: &Interrupt,
) -> Result<(), DeployError> {
    let started = std::time::Instant::now();
    let site = DeploySettings::resolve_target(&site_args(target, change, None))?;
    let (store, _session) = open_store(&site, interrupt).await;
    let found = find(&site, store.as_ref()).await?;
    let chosen: Vec<String> = if names.is_empty() {
        let limit = match older_than {
            Some(text) => {
                super::config::Span::parse(text)
                    .map_err(|message| super::settings::SettingsError::Flag {
                        flag: "--older-than",
                        value: text.to_string(),
                        message,
                    })?
                    .0
            }
            None => site.previews.expire_after,
        };
        found
            .iter()
            .filter(|p| older(p, limit))
            .map(|p| p.name.clone())
            .collect()
    } else {
        for name in names {
            check_preview_name(name)?;
            if !found.iter().any(|p| &p.name == name) {
                return Err(GuardError::NoSuchPreview {
                    name: name.clone(),
                    target: store.url(None),
                }
                .into());
            }
        }
        names.to_vec()
    };
    let printer = Printer::new(site.output, site.quiet);
    if chosen.is_empty() {
        printer.status(&format!(
            "{}: no preview to prune",
            escape(&store.url(None))
        ));
    }
    for name in chosen {
        let settings = DeploySettings::resolve_target(&site_args(target, change, Some(&name)))?;
        let result = locked(
            &settings,
            interrupt,
            "previews prune",
            async |deploy: &Deploy<'_>| delete_all(deploy).await,
        )
        .await;
        outcome(target, change, started, result)?;
    }
    Ok(())
}

/// Whether the preview was last deployed at least `limit` ago.
fn older(preview: &Found, limit: Duration) -> bool {
    preview
        .deployed
        .is_some_and(|at| crate::clock::Timestamp::now().since(at) >= limit)
}

/// Every key of the preview this `deploy` is opened on, deleted (or, dry, listed) through the
/// deploy's guard and delete phase; its lock goes last, with the unlock.
async fn delete_all(deploy: &Deploy<'_>) -> Result<super::report::DeployReport, Failure> {
    let mut plan = Plan::default();
    let mut listing = deploy.store.list(ListHint::none());
    while let Some(entry) = listing.next().await {
        let Listing::Object(meta) = entry.map_err(DeployError::from)? else {
            continue;
        };
        if meta.key.as_str() == super::lock::LOCK_KEY {
            continue;
        }
        plan.actions.push(delete_action(meta.key));
    }
    drop(listing);
    if deploy.settings.dryrun {
        let mut report = deploy
            .dry_run(&plan, &super::cdn::Changes::default(), Vec::new())
            .await?;
        report.pruned = true;
        return match guard(deploy.settings, &plan, deploy.store) {
            Ok(()) => Ok(report),
            Err(refused) => Err(Failure::with_report(refused.into(), report)),
        };
    }
    guard(deploy.settings, &plan, deploy.store)?;
    deploy.execute(&plan, &[], Vec::new()).await?;
    let mut report = deploy.report(
        Ending::Deployed,
        plan.actions.clone(),
        &plan,
        None,
        Vec::new(),
    );
    report.pruned = true;
    Ok(report)
}

fn delete_action(key: Key) -> Action {
    Action {
        op: Op::Delete,
        key,
        reason: Reason::Stale,
        phase: Phase::Delete,
        bytes: 0,
        immutable: false,
        file: None,
        copy_from: None,
        copy_from_origin: false,
        copy_etag: None,
        rule: None,
        header_changes: Vec::new(),
    }
}
