//! The asset references of an HTML page and of a stylesheet, found without an HTML parser:
//! attributes of start tags (quoted or not), outside comments and the bodies of `<script>`
//! and `<style>`; `url(...)` in CSS. Only what a browser fetches to render the page counts:
//! `src` (script, img, source, audio, video, track, embed, input), `srcset` (img, source),
//! `href` of `<link>` (stylesheet, modulepreload, preload, icon, manifest, …), `poster`, and
//! `url()` in `<style>` and `style=""`. Links to other pages (`<a href>`) are not assets.

/// Every reference `html` makes to an asset, in document order, as written (unresolved).
pub(crate) fn html_refs(html: &str) -> Vec<String> {
    let mut refs = Vec::new();
    let mut rest = html;
    while let Some(at) = rest.find('<') {
        rest = &rest[at..];
        if let Some(comment) = rest.strip_prefix("<!--") {
            rest = comment.find("-->").map_or("", |end| &comment[end + 3..]);
            continue;
        }
        let Some((tag, attributes, after)) = start_tag(rest) else {
            rest = &rest[1..];
            continue;
        };
        rest = after;
        for (name, value) in &attributes {
            let wanted = match name.as_str() {
                "src" => matches!(
                    tag.as_str(),
                    "script" | "img" | "source" | "audio" | "video" | "track" | "embed" | "input"
                ),
                "srcset" => matches!(tag.as_str(), "img" | "source"),
                "href" => tag == "link",
                "poster" => tag == "video",
                "style" => {
                    refs.extend(css_refs(value));
                    false
                }
                _ => false,
            };
            if !wanted {
                continue;
            }
            if name == "srcset" {
                refs.extend(srcset(value));
            } else {
                refs.push(value.trim().to_string());
            }
        }
        if matches!(tag.as_str(), "script" | "style") {
            let close = format!("</{tag}");
            let end = find_ci(rest, &close).unwrap_or(rest.len());
            if tag == "style" {
                refs.extend(css_refs(&rest[..end]));
            }
            rest = &rest[end..];
        }
    }
    refs.retain(|r| !r.is_empty());
    refs
}

/// Every `url(...)` of a stylesheet (and `@import "x.css"`), as written.
pub(crate) fn css_refs(css: &str) -> Vec<String> {
    let mut refs = Vec::new();
    let mut rest = css;
    while let Some(at) = find_ci(rest, "url(") {
        rest = &rest[at + 4..];
        let end = rest.find(')').unwrap_or(rest.len());
        let value = rest[..end].trim().trim_matches(['"', '\'']).trim();
        if !value.is_empty() {
            refs.push(value.to_string());
        }
        rest = &rest[end..];
    }
    let mut rest = css;
    while let Some(at) = find_ci(rest, "@import") {
        rest = rest[at + 7..].trim_start();
        if let Some(quote) = rest.chars().next().filter(|c| *c == '"' || *c == '\'') {
            let inner = &rest[1..];
            if let Some(end) = inner.find(quote) {
                refs.push(inner[..end].to_string());
            }
        }
    }
    refs
}

/// The URLs of a `srcset`: each candidate's first token.
fn srcset(value: &str) -> Vec<String> {
    value
        .split(',')
        .filter_map(|candidate| candidate.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// A tag's attributes: lower-case names, values with `&amp;` decoded.
type Attributes = Vec<(String, String)>;

/// A start tag at the start of `text`: its lower-case name, its attributes and the text after
/// it.
fn start_tag(text: &str) -> Option<(String, Attributes, &str)> {
    let body = text.strip_prefix('<')?;
    let name_end = body
        .find(|c: char| !c.is_ascii_alphanumeric())
        .unwrap_or(body.len());
    if name_end == 0 {
        return None;
    }
    let tag = body[..name_end].to_ascii_lowercase();
    let mut rest = &body[name_end..];
    let mut attributes = Vec::new();
    loop {
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix("/>").or_else(|| rest.strip_prefix('>')) {
            return Some((tag, attributes, after));
        }
        if rest.is_empty() {
            return Some((tag, attributes, rest));
        }
        let end = rest
            .find(|c: char| c.is_whitespace() || matches!(c, '=' | '>' | '/'))
            .unwrap_or(rest.len());
        if end == 0 {
            rest = &rest[1..];
            continue;
        }
        let name = rest[..end].to_ascii_lowercase();
        rest = rest[end..].trim_start();
        let Some(after_equals) = rest.strip_prefix('=') else {
            attributes.push((name, String::new()));
            continue;
        };
        rest = after_equals.trim_start();
        let (value, after) = if let Some(quote @ ('"' | '\'')) = rest.chars().next() {
            let inner = &rest[1..];
            let end = inner.find(quote).unwrap_or(inner.len());
            (&inner[..end], inner.get(end + 1..).unwrap_or(""))
        } else {
            let end = rest
                .find(|c: char| c.is_whitespace() || c == '>')
                .unwrap_or(rest.len());
            (&rest[..end], &rest[end..])
        };
        attributes.push((name, value.replace("&amp;", "&")));
        rest = after;
    }
}

/// `haystack.find(needle)` ignoring ASCII case.
fn find_ci(haystack: &str, needle: &str) -> Option<usize> {
    let needle = needle.as_bytes();
    haystack
        .as_bytes()
        .windows(needle.len())
        .position(|window| window.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_page_fetches() {
        let html = r#"<!doctype html><html><head>
            <link rel="stylesheet" href="/assets/index-B1.css">
            <link rel=modulepreload href=/assets/vendor-C2.js>
            <link rel="icon" href="favicon.svg"/>
            <!-- <script src="/commented.js"></script> -->
            <script type="module" src="/assets/index-A1.js"></script>
            <script>if (a < b) { document.write('<img src="/inline.png">') }</script>
            <style>body { background: url("/img/bg.png") } @import 'theme.css';</style>
            </head><body>
            <a href="/about/">not an asset</a>
            <IMG SRC='/img/a.png' srcset="/img/a-1x.png 1x, /img/a-2x.png 2x" alt="a > b">
            <div style="background-image: url(/img/div.png)"></div>
            <video poster="/img/poster.jpg"><source src="/v.mp4?x=1&amp;y=2"></video>
            </body></html>"#;
        assert_eq!(
            html_refs(html),
            [
                "/assets/index-B1.css",
                "/assets/vendor-C2.js",
                "favicon.svg",
                "/assets/index-A1.js",
                "/img/bg.png",
                "theme.css",
                "/img/a.png",
                "/img/a-1x.png",
                "/img/a-2x.png",
                "/img/div.png",
                "/img/poster.jpg",
                "/v.mp4?x=1&y=2",
            ]
        );
    }

    #[test]
    fn what_a_stylesheet_fetches() {
        let css =
            "@font-face{src:url(/fonts/a.woff2) format('woff2')} .x{background:URL( 'b.png' )}";
        assert_eq!(css_refs(css), ["/fonts/a.woff2", "b.png"]);
    }
}
