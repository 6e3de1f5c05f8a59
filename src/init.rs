//! `hoist init`: a commented deploy.yaml for the project in the working directory.
//!
//! [`detect`] reads package.json's dependencies and well-known config files (no build is run)
//! and returns the framework's output directory and where it puts content-hashed files;
//! [`config_text`] writes the rules for that layout: hashed files immutable for a year, pages
//! revalidated at once, everything else an hour.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use crate::cli::InitArgs;

/// A project layout hoist knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Framework {
    pub(crate) name: &'static str,
    /// What the build writes, relative to the project.
    pub(crate) output: &'static str,
    /// Globs of content-hashed files (empty when the framework does not hash names).
    pub(crate) hashed: &'static [&'static str],
    /// The build command to show.
    pub(crate) build: &'static str,
}

const fn framework(
    name: &'static str,
    output: &'static str,
    hashed: &'static [&'static str],
    build: &'static str,
) -> Framework {
    Framework {
        name,
        output,
        hashed,
        build,
    }
}

/// By package.json dependency, most specific first (Astro and SvelteKit use Vite too).
const BY_DEPENDENCY: &[(&str, Framework)] = &[
    (
        "next",
        framework(
            "Next.js (static export)",
            "out",
            &["_next/static/**"],
            "npm run build",
        ),
    ),
    (
        "astro",
        framework("Astro", "dist", &["_astro/**"], "npm run build"),
    ),
    (
        "@sveltejs/kit",
        framework(
            "SvelteKit (adapter-static)",
            "build",
            &["_app/immutable/**"],
            "npm run build",
        ),
    ),
    (
        "@docusaurus/core",
        framework("Docusaurus", "build", &["assets/**"], "npm run build"),
    ),
    (
        "gatsby",
        framework("Gatsby", "public", &["static/**"], "npm run build"),
    ),
    (
        "@11ty/eleventy",
        framework("Eleventy", "_site", &[], "npx @11ty/eleventy"),
    ),
    (
        "vite",
        framework("Vite", "dist", &["assets/**"], "npm run build"),
    ),
];

/// By a config file, for projects without package.json (or whose package.json names none).
const BY_FILE: &[(&str, Framework)] = &[
    ("hugo.toml", framework("Hugo", "public", &[], "hugo")),
    ("hugo.yaml", framework("Hugo", "public", &[], "hugo")),
    ("hugo.json", framework("Hugo", "public", &[], "hugo")),
    (
        "astro.config.mjs",
        framework("Astro", "dist", &["_astro/**"], "npm run build"),
    ),
    (
        "svelte.config.js",
        framework(
            "SvelteKit (adapter-static)",
            "build",
            &["_app/immutable/**"],
            "npm run build",
        ),
    ),
    (
        "eleventy.config.js",
        framework("Eleventy", "_site", &[], "npx @11ty/eleventy"),
    ),
    (
        ".eleventy.js",
        framework("Eleventy", "_site", &[], "npx @11ty/eleventy"),
    ),
    (
        "vite.config.js",
        framework("Vite", "dist", &["assets/**"], "npm run build"),
    ),
    (
        "vite.config.ts",
        framework("Vite", "dist", &["assets/**"], "npm run build"),
    ),
    (
        "_config.yml",
        framework("Jekyll", "_site", &[], "bundle exec jekyll build"),
    ),
];

/// The schema file `hoist init` writes beside deploy.yaml.
const SCHEMA_FILE: &str = "deploy.schema.json";
/// The copy the npm package ships.
const NPM_SCHEMA: &str = "node_modules/hoist-deploy/deploy.schema.json";

#[derive(Debug, thiserror::Error)]
pub(crate) enum InitError {
    #[error("`{}` already exists; hoist init never overwrites it", .0.display())]
    Exists(PathBuf),
    #[error("cannot write `{}`", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{target}` is not a target: {reason}")]
    Target { target: String, reason: String },
}

/// The framework of the project in `dir`, or a plain site in `dist/` or `public/`.
pub(crate) fn detect(dir: &Path) -> Option<Framework> {
    if let Ok(text) = std::fs::read_to_string(dir.join("package.json"))
        && let Ok(package) = serde_json::from_str::<serde_json::Value>(&text)
    {
        let has = |name: &str| {
            ["dependencies", "devDependencies"]
                .iter()
                .any(|section| package[section].get(name).is_some())
        };
        if let Some((_, found)) = BY_DEPENDENCY.iter().find(|(dep, _)| has(dep)) {
            return Some(found.clone());
        }
    }
    // Hugo's older config name is shared with other tools: only with Hugo's folders.
    if dir.join("config.toml").is_file() && dir.join("archetypes").is_dir() {
        return Some(framework("Hugo", "public", &[], "hugo"));
    }
    if let Some((_, found)) = BY_FILE.iter().find(|(file, _)| dir.join(file).is_file()) {
        return Some(found.clone());
    }
    ["dist", "public", "build", "_site", "out"]
        .iter()
        .find(|d| dir.join(d).join("index.html").is_file())
        .map(|d| Framework {
            name: "a static site",
            output: d,
            hashed: &[],
            build: "",
        })
}

/// The deploy.yaml for a framework and target, with a comment on every choice.
pub(crate) fn config_text(found: &Framework, target: &str) -> String {
    let mut text = format!(
        "# hoist deploy configuration for {} (written by `hoist init`).\n\
         # Every key is described in deploy.example.yaml in hoist's repository.\n\
         \n\
         # What the build writes{}.\n\
         source: {}\n\
         # Where it is published: s3://bucket/ or s3://bucket/prefix/.\n\
         target: {target}\n\
         exclude: [\"*.map\", \".DS_Store\"]\n\
         \n\
         # The first rule that matches a file's path wins.\n\
         rules:\n",
        found.name,
        if found.build.is_empty() {
            String::new()
        } else {
            format!(" (`{}`)", found.build)
        },
        found.output,
    );
    if !found.hashed.is_empty() {
        let patterns = found
            .hashed
            .iter()
            .map(|p| format!("\"{p}\""))
            .collect::<Vec<_>>()
            .join(", ");
        text.push_str(&format!(
            "  # Content-hashed files: a new name for new content, so browsers and CDNs keep them\n  \
             # for a year; uploaded first, never invalidated, kept a while after they leave.\n  \
             - match: [{patterns}]\n    \
             cache_control: \"public, max-age=31536000, immutable\"\n    \
             immutable: true\n"
        ));
    }
    text.push_str(
        "  # Pages: always revalidated, so a deploy shows at once; published after their assets.\n  \
         - match: \"*.html\"\n    \
         cache_control: \"public, max-age=0, must-revalidate\"\n  \
         # Everything else (images, fonts, robots.txt): an hour.\n  \
         - match: \"**\"\n    \
         cache_control: \"public, max-age=3600\"\n",
    );
    text
}

/// Runs `hoist init`: detects, asks for the bucket when it can, writes deploy.yaml, and says
/// what to run next. Returns the lines to print.
pub(crate) fn run(args: &InitArgs) -> Result<Vec<String>, InitError> {
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from("."));
    let path = dir.join(crate::deploy::settings::DEFAULT_CONFIG);
    if path.exists() {
        return Err(InitError::Exists(path));
    }
    let found = detect(&dir).unwrap_or(Framework {
        name: "a static site",
        output: "dist",
        hashed: &[],
        build: "",
    });
    let target = match &args.target {
        Some(target) => target.clone(),
        None => ask_target().unwrap_or_else(|| "s3://YOUR-BUCKET/".to_string()),
    };
    crate::deploy::target::Target::parse(&target).map_err(|e| InitError::Target {
        target: target.clone(),
        reason: e.reason,
    })?;
    let mut lines = Vec::new();
    // Editors validate and complete deploy.yaml from the schema: the npm package's copy, else
    // one written beside it.
    let schema = if dir.join(NPM_SCHEMA).is_file() {
        NPM_SCHEMA.to_string()
    } else {
        let local = dir.join(SCHEMA_FILE);
        if !local.exists() {
            let json = serde_json::to_string_pretty(&crate::deploy::config::schema())
                .expect("the schema serializes");
            write_new(&local, &format!("{json}\n"))?;
            lines.push(format!(
                "wrote {} (editor support; `hoist schema` regenerates it)",
                local.display()
            ));
        }
        SCHEMA_FILE.to_string()
    };
    let text = format!(
        "# yaml-language-server: $schema={schema}\n{}",
        config_text(&found, &target)
    );
    write_new(&path, &text)?;
    lines.insert(
        0,
        format!(
            "wrote {} for {} (source `{}`, target `{target}`)",
            path.display(),
            found.name,
            found.output
        ),
    );
    if target.contains("YOUR-BUCKET") {
        lines.push(format!(
            "set `target` in {} to your bucket, then:",
            path.display()
        ));
    } else {
        lines.push("next:".to_string());
    }
    if !found.build.is_empty() {
        lines.push(format!("  {}", found.build));
    }
    lines.push("  hoist deploy --dryrun    # review the plan, then `hoist deploy`".to_string());
    Ok(lines)
}

/// Creates the file, failing if something appeared in between.
fn write_new(path: &Path, text: &str) -> Result<(), InitError> {
    let failed = |source| InitError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => InitError::Exists(path.to_path_buf()),
            _ => failed(e),
        })?;
    file.write_all(text.as_bytes()).map_err(failed)
}

/// On a terminal, asks for the target; elsewhere (CI, a pipe) there is nobody to ask.
fn ask_target() -> Option<String> {
    if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        return None;
    }
    crate::report::prompt("the bucket to publish to (s3://bucket/ or s3://bucket/prefix/): ");
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).ok()?;
    let line = line.trim();
    if line.is_empty() {
        return None;
    }
    Some(if line.starts_with("s3://") {
        line.to_string()
    } else {
        format!("s3://{}/", line.trim_end_matches('/'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        dir
    }

    fn deps(name: &str) -> String {
        format!(r#"{{"devDependencies": {{"{name}": "1.0.0", "vite": "7.0.0"}}}}"#)
    }

    /// Files of a minimal project, and the framework, output and hashed globs expected.
    type Case = (
        Vec<(&'static str, String)>,
        &'static str,
        &'static str,
        &'static [&'static str],
    );

    #[test]
    fn each_framework_is_detected_from_a_minimal_project() {
        let cases: Vec<Case> = vec![
            (
                vec![("package.json", r#"{"devDependencies":{"vite":"7"}}"#.into())],
                "Vite",
                "dist",
                &["assets/**"],
            ),
            (
                vec![("package.json", deps("astro"))],
                "Astro",
                "dist",
                &["_astro/**"],
            ),
            (
                vec![(
                    "package.json",
                    r#"{"dependencies":{"next":"15","react":"19"}}"#.into(),
                )],
                "Next.js (static export)",
                "out",
                &["_next/static/**"],
            ),
            (
                vec![("package.json", deps("@sveltejs/kit"))],
                "SvelteKit (adapter-static)",
                "build",
                &["_app/immutable/**"],
            ),
            (
                vec![(
                    "package.json",
                    r#"{"dependencies":{"@docusaurus/core":"3"}}"#.into(),
                )],
                "Docusaurus",
                "build",
                &["assets/**"],
            ),
            (
                vec![("package.json", r#"{"dependencies":{"gatsby":"5"}}"#.into())],
                "Gatsby",
                "public",
                &["static/**"],
            ),
            (
                vec![(
                    "package.json",
                    r#"{"devDependencies":{"@11ty/eleventy":"3"}}"#.into(),
                )],
                "Eleventy",
                "_site",
                &[],
            ),
            (
                vec![("hugo.toml", "baseURL = '/'".into())],
                "Hugo",
                "public",
                &[],
            ),
            (
                vec![
                    ("config.toml", "baseURL = '/'".into()),
                    ("archetypes/default.md", String::new()),
                ],
                "Hugo",
                "public",
                &[],
            ),
            (
                vec![("_config.yml", "title: blog".into())],
                "Jekyll",
                "_site",
                &[],
            ),
            (
                vec![("dist/index.html", "<p>".into())],
                "a static site",
                "dist",
                &[],
            ),
            (
                vec![("public/index.html", "<p>".into())],
                "a static site",
                "public",
                &[],
            ),
        ];
        for (files, name, output, hashed) in cases {
            let files: Vec<(&str, &str)> = files.iter().map(|(p, t)| (*p, t.as_str())).collect();
            let dir = project(&files);
            let found = detect(dir.path()).unwrap_or_else(|| panic!("{name}: nothing found"));
            assert_eq!(
                (found.name, found.output, found.hashed),
                (name, output, hashed),
                "{files:?}"
            );
        }
        assert_eq!(detect(project(&[("README.md", "")]).path()), None);
    }

    #[test]
    fn the_config_parses_and_makes_hashed_files_immutable() {
        for found in BY_DEPENDENCY
            .iter()
            .map(|(_, f)| f)
            .chain(BY_FILE.iter().map(|(_, f)| f))
        {
            let text = config_text(found, "s3://bucket/site/");
            let config = crate::deploy::config::DeployConfig::parse(&text)
                .unwrap_or_else(|e| panic!("{}: {e}\n{text}", found.name));
            let rules = crate::deploy::rules::Rules::from_config(&config).unwrap();
            let page = rules.resolve(&crate::key::Key::new("docs/index.html").unwrap());
            assert!(!page.immutable);
            assert_eq!(
                page.headers.cache_control.as_deref(),
                Some("public, max-age=0, must-revalidate")
            );
            if let Some(pattern) = found.hashed.first() {
                let key = pattern.replace("**", "app.1a2b3c.js");
                let asset = rules.resolve(&crate::key::Key::new(key).unwrap());
                assert!(asset.immutable, "{}", found.name);
            }
        }
    }
}
