//! `hoist rollback [RELEASE]` and `hoist releases`.
//!
//! A rollback is a deploy whose files come from a release record instead of a build: each key
//! of the release, with the release's bytes and headers, its bytes copied server-side from
//! where hoist kept them (`.hoist/objects/<blake3>`, a kept stale key, or a key of the release
//! that already holds them). It then runs the deploy's stages unchanged: the same plan, phases,
//! guards, lock, invalidation and manifest, and it is a new release itself, so rolling forward
//! is another rollback. It needs no build and sends no PutObject of site content.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use super::Failure;
use super::error::RollbackError;
use super::manifest::Manifest;
use super::release::{self, Release};
use super::report::DeployReport;
use super::rules::Resolved;
use super::scan::LocalFile;
use super::settings::DeploySettings;
use super::{
    Deploy, DeployError, Gathered, Origin, fetch_manifest, list_target, locked, open_store,
};
use crate::cli::{BuildArgs, ChangeArgs, DeployArgs, ReleasesArgs, RollbackArgs};
use crate::digest::Digest;
use crate::interrupt::Interrupt;
use crate::key::Key;
use crate::report::{Printer, escape, human_bytes};
use crate::store::{ListHint, ObjectMeta, Store};

/// Runs `hoist rollback`.
pub(crate) async fn rollback(
    args: &RollbackArgs,
    interrupt: &Interrupt,
) -> Result<(), DeployError> {
    let started = std::time::Instant::now();
    let result = Box::pin(restore(args, interrupt)).await;
    super::outcome(&args.target, &args.change, started, result)
}

async fn restore(args: &RollbackArgs, interrupt: &Interrupt) -> Result<DeployReport, Failure> {
    let settings = DeploySettings::resolve_target(&DeployArgs {
        target: args.target.clone(),
        change: args.change.clone(),
        build: BuildArgs::default(),
    })?;
    let wanted = args.release;
    locked(
        &settings,
        interrupt,
        "rollback",
        async |deploy: &Deploy<'_>| {
            let (objects, manifest, warnings) = list_target(deploy.store, ListHint::none()).await?;
            let (manifest, id) = choose(deploy, manifest, wanted)?;
            let record = fetch_record(deploy.store, id).await?;
            let files = restore_files(&record, &objects, &manifest)?;
            // The release's functions, when hoist manages them (a release published before
            // that has none, and leaves the live functions alone).
            let functions = if deploy.settings.function.is_some() {
                record.functions.clone()
            } else {
                Vec::new()
            };
            let origin = Origin {
                kind: "rollback",
                restores: Some(id),
                commit: record.summary.commit.clone(),
                message: Some(
                    deploy
                        .settings
                        .message
                        .clone()
                        .unwrap_or_else(|| format!("rollback to release {id}")),
                ),
            };
            deploy.printer.status(&format!(
                "rolling back to release {id} ({} files{})",
                record.objects.len(),
                record
                    .summary
                    .message
                    .as_deref()
                    .map(|m| format!(", \"{}\"", escape(m)))
                    .unwrap_or_default()
            ));
            let gathered = Gathered {
                files,
                objects,
                manifest: Some(manifest),
                warnings,
                notes: Vec::new(),
                functions,
            };
            Box::pin(deploy.plan_and_apply(gathered, &origin)).await
        },
    )
    .await
}

/// The release to restore: the one named, or the newest before the live one.
fn choose(
    deploy: &Deploy<'_>,
    manifest: Option<Manifest>,
    wanted: Option<u64>,
) -> Result<(Manifest, u64), RollbackError> {
    let no_releases = || RollbackError::NoReleases {
        target: deploy.store.url(None),
        keep: deploy.settings.lifecycle.keep_releases,
    };
    let manifest = manifest.ok_or_else(no_releases)?;
    let live = manifest.live.ok_or_else(no_releases)?;
    let retained: Vec<u64> = manifest.releases.iter().map(|r| r.id).collect();
    let id = match wanted {
        Some(id) => id,
        None => retained
            .iter()
            .copied()
            .filter(|id| *id < live)
            .max()
            .ok_or(RollbackError::NothingBefore { live })?,
    };
    if !retained.contains(&id) {
        return Err(RollbackError::NotRetained { id, retained });
    }
    Ok((manifest, id))
}

async fn fetch_record(store: &dyn Store, id: u64) -> Result<Release, RollbackError> {
    let key = release::record_key(id);
    let failed = |source: Box<dyn std::error::Error + Send + Sync>| RollbackError::Record {
        id,
        url: store.url(Some(&key)),
        source,
    };
    let bytes = store.get(&key).await.map_err(|e| failed(Box::new(e)))?;
    Release::parse(&bytes).map_err(|e| failed(Box::new(e)))
}

/// The release's objects as the files of a deploy, each with where its bytes can be copied
/// from. Refuses, before anything changes, when some key's bytes are nowhere to be found.
fn restore_files(
    record: &Release,
    objects: &[ObjectMeta],
    manifest: &Manifest,
) -> Result<Vec<LocalFile>, RollbackError> {
    let listed: BTreeMap<&Key, &ObjectMeta> = objects.iter().map(|m| (&m.key, m)).collect();
    let holds = |key: &Key, blake3: &Digest| {
        listed
            .get(key)
            .and_then(|meta| manifest.known_entry(meta))
            .is_some_and(|entry| entry.blake3 == *blake3)
    };
    let mut files = Vec::new();
    let mut missing = Vec::new();
    for (key, object) in &record.objects {
        let blob = release::blob_key(&object.blake3);
        // Sources this rollback does not overwrite: kept bytes, kept stale keys, and keys of
        // the release that already hold the same bytes.
        let source = if listed.contains_key(&blob) {
            Some(blob)
        } else {
            listed
                .keys()
                .find(|other| {
                    let stays = manifest.stale.contains_key(**other)
                        || record
                            .objects
                            .get(**other)
                            .is_some_and(|o| o.blake3 == object.blake3);
                    stays && holds(other, &object.blake3)
                })
                .map(|other| (*other).clone())
        };
        if source.is_none() && !holds(key, &object.blake3) {
            missing.push(key.as_str().to_string());
        }
        files.push(LocalFile {
            key: key.clone(),
            path: PathBuf::new(),
            size: object.size,
            mtime: SystemTime::UNIX_EPOCH,
            blake3: object.blake3,
            resolved: Resolved {
                headers: Arc::new(object.headers.clone()),
                immutable: object.immutable,
                rule: None,
                encode: object.encode,
            },
            // A key that already holds its bytes is never copied onto itself.
            copy_from: source.filter(|source| source != key),
            from_origin: None,
        });
    }
    if !missing.is_empty() {
        return Err(RollbackError::Unrestorable {
            id: record.summary.id,
            keys: missing,
        });
    }
    Ok(files)
}

/// One line of `hoist releases --output json`.
#[derive(Debug, serde::Serialize)]
struct Listed<'a> {
    #[serde(flatten)]
    summary: &'a super::manifest::ReleaseSummary,
    live: bool,
}

/// `hoist releases --output markdown`: a table, newest first.
fn releases_markdown(target: &str, listed: &[Listed<'_>]) -> String {
    use super::report::markdown::{cell, code};
    let mut out = format!("### hoist: releases of {}\n\n", code(target));
    if listed.is_empty() {
        out.push_str("No releases yet.");
        return out;
    }
    out.push_str("| release | created | kind | commit | files | bytes | message |\n");
    out.push_str("|---:|---|---|---|---:|---:|---|\n");
    for entry in listed {
        let s = entry.summary;
        let kind = match s.restores {
            Some(restored) => format!("rollback to {restored}"),
            None => s.kind.clone(),
        };
        out.push_str(&format!(
            "| {}{} | {} | {} | {} | {} | {} | {} |\n",
            s.id,
            if entry.live { " (live)" } else { "" },
            s.created,
            cell(&kind),
            s.commit
                .as_deref()
                .map_or("-".to_string(), |c| code(&c[..c.len().min(8)])),
            s.files,
            human_bytes(s.bytes),
            cell(s.message.as_deref().unwrap_or(""))
        ));
    }
    out.trim_end().to_string()
}

/// Runs `hoist releases`: one GET of the manifest.
pub(crate) async fn releases(
    args: &ReleasesArgs,
    interrupt: &Interrupt,
) -> Result<(), DeployError> {
    let settings = DeploySettings::resolve_target(&DeployArgs {
        target: args.target.clone(),
        change: ChangeArgs::default(),
        build: BuildArgs::default(),
    })?;
    let printer = Printer::new(settings.output, settings.quiet);
    let (store, _session) = open_store(&settings, interrupt).await;
    let (manifest, warning) = fetch_manifest(store.as_ref()).await?;
    if let Some(warning) = warning {
        printer.warn(&warning);
    }
    let manifest = manifest.unwrap_or_else(|| Manifest::new(BTreeMap::new()));
    let listed: Vec<Listed<'_>> = manifest
        .releases
        .iter()
        .map(|summary| Listed {
            summary,
            live: manifest.live == Some(summary.id),
        })
        .collect();
    if printer.format() == crate::cli::OutputFormat::Markdown {
        printer.data(&releases_markdown(&store.url(None), &listed));
        return Ok(());
    }
    if !printer.is_human() {
        let document = serde_json::json!({
            "schema": super::report::SCHEMA,
            "status": "ok",
            "target": store.url(None),
            "releases": listed,
        });
        printer.data(&serde_json::to_string_pretty(&document).expect("releases serialize"));
        return Ok(());
    }
    if listed.is_empty() {
        printer.data(&format!("{}: no releases yet", escape(&store.url(None))));
        return Ok(());
    }
    for entry in &listed {
        let s = entry.summary;
        let what = match s.restores {
            Some(restored) => format!("rollback to {restored}"),
            None => s.kind.clone(),
        };
        printer.data(&format!(
            "{} {:>4}  {}  {:<16}  {:<8}  {} files, {}  {}",
            if entry.live { "*" } else { " " },
            s.id,
            s.created,
            what,
            s.commit.as_deref().map_or("-", |c| &c[..c.len().min(8)]),
            s.files,
            human_bytes(s.bytes),
            escape(s.message.as_deref().unwrap_or(""))
        ));
    }
    Ok(())
}
