#!/usr/bin/env python3
"""Reads Markdown on stdin and prints, as JSON, what a reader of the rendered document sees:
headings, tables (rows of cell texts), folds (<details> blocks: their summary and the
code spans of each list item) and whether every <details> is closed. Parsed with
markdown-it-py's CommonMark parser with tables enabled, as GitHub renders a comment. Used by
tests/it/review.rs."""

import json
import re
import sys

from markdown_it import MarkdownIt


def inline_text(token):
    return "".join(child.content for child in (token.children or []))


def main():
    source = sys.stdin.read()
    md = MarkdownIt("commonmark").enable("table")
    tokens = md.parse(source)
    out = {"headings": [], "tables": [], "folds": [], "open_details": 0, "errors": [],
           "paragraphs": []}
    depth = 0
    table = None
    row = None
    fold = None
    item = None
    for i, token in enumerate(tokens):
        if token.type == "heading_open":
            out["headings"].append(inline_text(tokens[i + 1]))
        elif token.type == "paragraph_open" and fold is None and table is None:
            out["paragraphs"].append(inline_text(tokens[i + 1]))
        elif token.type == "html_block":
            for tag in re.findall(r"</?details>|<details\b[^>]*>", token.content):
                if tag.startswith("</"):
                    depth -= 1
                    if depth < 0:
                        out["errors"].append("</details> without <details>")
                    if fold is not None:
                        out["folds"].append(fold)
                        fold = None
                else:
                    depth += 1
                    summary = re.search(r"<summary>(.*?)</summary>", token.content, re.S)
                    fold = {"summary": summary.group(1) if summary else None, "items": []}
        elif token.type == "table_open":
            table = []
        elif token.type == "tr_open":
            row = []
        elif token.type in ("th_open", "td_open"):
            row.append(inline_text(tokens[i + 1]))
        elif token.type == "tr_close":
            table.append(row)
        elif token.type == "table_close":
            out["tables"].append(table)
            table = None
        elif token.type == "list_item_open" and fold is not None:
            item = {"code": [], "text": ""}
        elif token.type == "inline" and item is not None:
            item["code"] += [c.content for c in token.children if c.type == "code_inline"]
            item["text"] += inline_text(token)
        elif token.type == "list_item_close" and item is not None:
            fold["items"].append(item)
            item = None
    out["open_details"] = depth
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
