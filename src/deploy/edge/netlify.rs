//! The build's `_redirects` and `_headers` files, in the format Netlify and Cloudflare Pages
//! read: the static subset (paths, splats, placeholders, statuses, forced rules, header
//! blocks). What a static edge cannot honour (query-string matching, country, language, role
//! or cookie conditions, domains in `from`, proxying status codes other than 200, 404 pages)
//! is reported naming the line, and that rule is left out: never applied half.

use super::{HeaderRule, PathPattern, Redirect, header_name, redirect};

/// What a file yields: its rules, and a note per line left out.
#[derive(Debug)]
pub(crate) struct Parsed<T> {
    pub(crate) rules: Vec<T>,
    pub(crate) notes: Vec<String>,
}

impl<T> Default for Parsed<T> {
    fn default() -> Self {
        Parsed {
            rules: Vec::new(),
            notes: Vec::new(),
        }
    }
}

/// Reads a `_redirects` file: `from to [status][!] [conditions]`, one rule a line.
pub(crate) fn parse_redirects(text: &str) -> Parsed<Redirect> {
    let mut parsed = Parsed::default();
    for (index, line) in text.lines().enumerate() {
        let origin = format!("{} line {}", super::REDIRECTS_FILE, index + 1);
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match parse_redirect_line(line, &origin) {
            Ok(rule) => parsed.rules.push(rule),
            Err(why) => parsed
                .notes
                .push(format!("{origin}: {why}; this rule is left out")),
        }
    }
    parsed
}

fn parse_redirect_line(line: &str, origin: &str) -> Result<Redirect, String> {
    // A `#` after the rule starts a comment.
    let line = line.split(" #").next().unwrap_or(line);
    let tokens: Vec<&str> = line.split_whitespace().collect();
    let [from, rest @ ..] = tokens.as_slice() else {
        return Err("an empty rule".into());
    };
    if from.starts_with("http://") || from.starts_with("https://") {
        return Err(format!(
            "`{from}` matches on a domain, which one site's edge function does not see"
        ));
    }
    let Some((to_at, to)) = rest
        .iter()
        .enumerate()
        .find(|(_, t)| !t.contains('=') || t.starts_with('/') || t.contains("://"))
    else {
        return Err("no `to`".into());
    };
    if to_at > 0 {
        return Err(format!(
            "query-string matching (`{}`) is not supported",
            rest[..to_at].join(" ")
        ));
    }
    let after = &rest[to_at + 1..];
    let (status, force, conditions) = match after.first() {
        Some(token)
            if token
                .trim_end_matches('!')
                .bytes()
                .all(|b| b.is_ascii_digit()) =>
        {
            let digits = token.trim_end_matches('!');
            let status: u16 = digits
                .parse()
                .map_err(|_| format!("`{token}` is not a status"))?;
            (status, token.ends_with('!'), &after[1..])
        }
        _ => (301, false, after),
    };
    if !conditions.is_empty() {
        return Err(format!(
            "conditions (`{}`) cannot be honoured by a static edge",
            conditions.join(" ")
        ));
    }
    match status {
        404 | 410 | 451 => {
            return Err(format!(
                "status {status} serves a custom error page, which a viewer-request function \
                 cannot do (use the distribution's custom error responses)"
            ));
        }
        200 if to.contains("://") => {
            return Err(format!(
                "a 200 to `{to}` proxies another site, which CloudFront Functions cannot do"
            ));
        }
        _ => {}
    }
    redirect(from, to, status, force, origin.to_string()).map_err(|error| error.message)
}

/// Reads a `_headers` file: a path line, then indented `Name: value` lines (`! Name` removes
/// a header, as Cloudflare reads it).
pub(crate) fn parse_headers(text: &str) -> Parsed<HeaderRule> {
    let mut parsed: Parsed<HeaderRule> = Parsed::default();
    let mut current: Option<HeaderRule> = None;
    let mut skipping = false;
    for (index, raw) in text.lines().enumerate() {
        let origin = format!("{} line {}", super::HEADERS_FILE, index + 1);
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let indented = raw.starts_with(' ') || raw.starts_with('\t');
        if !indented {
            if let Some(rule) = current.take() {
                parsed.rules.push(rule);
            }
            match PathPattern::parse(line) {
                Ok(path) => {
                    skipping = false;
                    current = Some(HeaderRule {
                        path,
                        headers: Vec::new(),
                        origin,
                    });
                }
                Err(why) => {
                    skipping = true;
                    parsed
                        .notes
                        .push(format!("{origin}: {why}; its headers are left out"));
                }
            }
            continue;
        }
        if skipping {
            continue;
        }
        let Some(rule) = current.as_mut() else {
            parsed.notes.push(format!(
                "{origin}: a header before any path; it is left out"
            ));
            continue;
        };
        let header = if let Some(name) = line.strip_prefix('!') {
            header_name(name.trim()).map(|name| (name, None))
        } else {
            match line.split_once(':') {
                Some((name, value)) => {
                    header_name(name.trim()).map(|name| (name, Some(value.trim().to_string())))
                }
                None => Err(format!("`{line}` is not `Name: value`")),
            }
        };
        match header {
            Ok(header) => rule.headers.push(header),
            Err(why) => parsed
                .notes
                .push(format!("{origin}: {why}; it is left out")),
        }
    }
    if let Some(rule) = current {
        parsed.rules.push(rule);
    }
    parsed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_files_read_the_static_subset_and_report_the_rest() {
        let text = "\
# moved pages
/old /new
/blog/* /posts/:splat 302
/users/:id /u/:id 301!
/app/* /app/index.html 200
/store id=:id /blog/:id 301
/de/* /de/index.html 200 Country=de
https://old.example.com/* https://example.com/:splat 301!
/missing /404.html 404
/x https://other.example.com/x 200
/ok /fine 308 # trailing comment
";
        let parsed = parse_redirects(text);
        let rules: Vec<(String, String, u16, bool)> = parsed
            .rules
            .iter()
            .map(|r| (r.from.text.clone(), r.to.clone(), r.status, r.force))
            .collect();
        assert_eq!(
            rules,
            [
                ("/old".into(), "/new".into(), 301, false),
                ("/blog/*".into(), "/posts/:splat".into(), 302, false),
                ("/users/:id".into(), "/u/:id".into(), 301, true),
                ("/app/*".into(), "/app/index.html".into(), 200, false),
                ("/ok".into(), "/fine".into(), 308, false),
            ]
        );
        assert_eq!(parsed.notes.len(), 5, "{:#?}", parsed.notes);
        for (line, word) in [
            (6, "query-string"),
            (7, "Country=de"),
            (8, "domain"),
            (9, "custom error"),
            (10, "proxies"),
        ] {
            assert!(
                parsed
                    .notes
                    .iter()
                    .any(|n| n.starts_with(&format!("_redirects line {line}:")) && n.contains(word)),
                "line {line}: {:#?}",
                parsed.notes
            );
        }
    }

    #[test]
    fn headers_files_read_blocks() {
        let text = "\
/*
  X-Frame-Options: DENY
  Strict-Transport-Security: max-age=63072000
/assets/*
  ! X-Frame-Options
  Bad Header: x
/embed
  Content-Security-Policy: frame-ancestors *
";
        let parsed = parse_headers(text);
        assert_eq!(parsed.rules.len(), 3);
        assert_eq!(
            parsed.rules[0].headers,
            [
                ("x-frame-options".into(), Some("DENY".into())),
                (
                    "strict-transport-security".into(),
                    Some("max-age=63072000".into())
                )
            ]
        );
        assert_eq!(parsed.rules[1].headers, [("x-frame-options".into(), None)]);
        assert_eq!(parsed.notes.len(), 1);
        assert!(parsed.notes[0].starts_with("_headers line 6:"));
    }
}
