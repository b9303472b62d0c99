#!/usr/bin/env python3
"""Checks every internal link and anchor of the book (docs/src/**/*.md) and
the README.

    scripts/check-links.py [--html docs/book]

A link is internal when it has no scheme (http:, https:, mailto: ... are not
fetched). Its file must exist; a link from the book must stay inside
docs/src (the built book has nothing else); an anchor (`#id`) must be the id
of a heading of its target, as mdBook makes them (and GitHub, for the README):
the heading's text, trimmed and lowercased, letters, digits, `_` and `-` kept,
whitespace turned into `-`, everything else dropped; a repeated id gets -1,
-2, ... Every page of docs/src must be listed in SUMMARY.md.

With --html BOOK (the build output), every anchor of a link into the book is
also looked up among the ids of the built page, so a difference between these
rules and mdBook's own shows up as a failure too.

Python 3 standard library only. Exit status 1 with one line per broken link.
"""

import argparse
import html
import os
import re
import sys
from html.parser import HTMLParser

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
BOOK_SRC = os.path.join(ROOT, "docs", "src")

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?[ \t]*$")
SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
ATTRIBUTE = re.compile(r"\s*\{#([^\s}]+)[^}]*\}\s*$")
# [text](target) and ![alt](target); the target may be <...> and may carry a "title".
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*(<[^>]*>|[^\s)]*)(?:\s+\"[^\"]*\"|\s+'[^']*')?\s*\)")
REFERENCE_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)")
HTML_LINK = re.compile(r"<(?:a|img)\b[^>]*?\b(?:href|src)\s*=\s*\"([^\"]*)\"", re.IGNORECASE)
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def heading_id(text):
    """mdBook's id_from_content (mdbook-html 0.5, utils.rs), over the
    heading's rendered text."""
    out = []
    for ch in text.strip().lower():
        if ch.isalnum() or ch in "_-":
            out.append(ch)
        elif ch.isspace():
            out.append("-")
    return "".join(out)


def rendered_text(markdown):
    """The text a heading renders to: code spans keep their content, links
    and images their text, emphasis markers and HTML tags go."""
    spans = []

    def keep(match):
        spans.append(match.group(2).strip() if match.group(2).strip() else match.group(2))
        return "\x00%d\x00" % (len(spans) - 1)

    text = CODE_SPAN.sub(keep, markdown)
    text = re.sub(r"!?\[((?:[^\[\]]|\[[^\]]*\])*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"<[^>]+>", "", text)
    text = re.sub(r"(\*\*|__|\*|(?<!\w)_|_(?!\w))", "", text)
    text = text.replace("\\", "")
    text = html.unescape(text)
    return re.sub("\x00(\\d+)\x00", lambda m: spans[int(m.group(1))], text)


def blank_code_spans(line):
    """The line with inline code replaced by spaces (links inside code are
    not links)."""
    return CODE_SPAN.sub(lambda m: " " * len(m.group(0)), line)


class Page:
    """One markdown file: its links (line, target) and its heading ids."""

    def __init__(self, path):
        self.path = path
        self.links = []
        self.ids = []
        used = set()
        fence = None
        previous = ""
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n")
        for number, line in enumerate(lines, 1):
            opened = FENCE.match(line)
            if fence:
                if opened and opened.group(1)[0] == fence[0] and len(opened.group(1)) >= len(fence):
                    fence = None
                previous = ""
                continue
            if opened:
                fence = opened.group(1)
                previous = ""
                continue
            heading = None
            atx = ATX.match(line)
            if atx:
                heading = re.sub(r"[ \t]+#+$", "", atx.group(2) or "")
            elif previous.strip() and SETEXT.match(line) and not previous.lstrip().startswith(("|", "-", "*", ">")):
                heading = previous
            if heading is not None:
                explicit = ATTRIBUTE.search(heading)
                if explicit:
                    anchor = explicit.group(1)
                else:
                    anchor = heading_id(rendered_text(heading))
                self.ids.append(self._unique(anchor, used))
            plain = blank_code_spans(line)
            for match in INLINE_LINK.finditer(plain):
                self.links.append((number, match.group(1).strip("<>")))
            for match in HTML_LINK.finditer(plain):
                self.links.append((number, html.unescape(match.group(1))))
            definition = REFERENCE_DEF.match(plain)
            if definition:
                self.links.append((number, definition.group(1).strip("<>")))
            previous = line if not atx else ""

    @staticmethod
    def _unique(anchor, used):
        if anchor not in used:
            used.add(anchor)
            return anchor
        n = 1
        while "%s-%d" % (anchor, n) in used:
            n += 1
        used.add("%s-%d" % (anchor, n))
        return "%s-%d" % (anchor, n)


class IdCollector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids = set()

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name == "id" and value:
                self.ids.add(value)


def html_ids(path):
    collector = IdCollector()
    with open(path, encoding="utf-8") as f:
        collector.feed(f.read())
    return collector.ids


def inside(path, directory):
    return os.path.commonpath([os.path.abspath(path), os.path.abspath(directory)]) == os.path.abspath(directory)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--html", metavar="BOOK", help="the built book (mdbook's output), to check anchors against")
    args = parser.parse_args()

    files = [os.path.join(ROOT, "README.md")]
    for directory, _, names in os.walk(BOOK_SRC):
        files += [os.path.join(directory, n) for n in sorted(names) if n.endswith(".md")]
    pages = {}

    def page(path):
        if path not in pages:
            pages[path] = Page(path)
        return pages[path]

    problems = []
    checked = 0
    book_html = os.path.join(ROOT, args.html) if args.html and not os.path.isabs(args.html) else args.html
    html_cache = {}
    for path in files:
        source = page(path)
        in_book = inside(path, BOOK_SRC)
        where = os.path.relpath(path, ROOT)
        for number, target in source.links:
            if not target or SCHEME.match(target) or target.startswith("//"):
                continue
            checked += 1
            link, _, anchor = target.partition("#")
            link = link.split("?")[0]
            if link.startswith("/"):
                problems.append("%s:%d: %s: an absolute path (use a relative one)" % (where, number, target))
                continue
            resolved = os.path.normpath(os.path.join(os.path.dirname(path), link)) if link else path
            if not os.path.exists(resolved):
                problems.append("%s:%d: %s: %s does not exist" % (where, number, target, os.path.relpath(resolved, ROOT)))
                continue
            if in_book and not inside(resolved, BOOK_SRC):
                problems.append("%s:%d: %s: outside docs/src, so not in the built book (name the file in `code` instead)" % (where, number, target))
                continue
            if not anchor:
                continue
            if not resolved.endswith(".md"):
                problems.append("%s:%d: %s: an anchor into a file that is not markdown" % (where, number, target))
                continue
            ids = page(resolved).ids
            if anchor not in ids:
                close = [i for i in ids if anchor.split("-")[0] in i][:3]
                hint = (" (headings there: %s)" % ", ".join(close)) if close else ""
                problems.append("%s:%d: %s: no heading with id `%s` in %s%s" % (where, number, target, anchor, os.path.relpath(resolved, ROOT), hint))
                continue
            if book_html and inside(resolved, BOOK_SRC):
                built = os.path.join(book_html, os.path.relpath(resolved, BOOK_SRC)[:-3] + ".html")
                if not os.path.exists(built):
                    problems.append("%s:%d: %s: %s was not built (is the page in SUMMARY.md?)" % (where, number, target, os.path.relpath(built, ROOT)))
                    continue
                if built not in html_cache:
                    html_cache[built] = html_ids(built)
                if anchor not in html_cache[built]:
                    problems.append("%s:%d: %s: the built page %s has no id `%s` (these rules and mdBook's disagree)" % (where, number, target, os.path.relpath(built, ROOT), anchor))

    summary = os.path.join(BOOK_SRC, "SUMMARY.md")
    listed = set()
    if os.path.exists(summary):
        for _, target in page(summary).links:
            listed.add(os.path.normpath(os.path.join(BOOK_SRC, target.partition("#")[0])))
    for path in files:
        if inside(path, BOOK_SRC) and path != summary and path not in listed:
            problems.append("%s: not listed in docs/src/SUMMARY.md" % os.path.relpath(path, ROOT))

    if problems:
        print("broken links (%d):" % len(problems), file=sys.stderr)
        for p in problems:
            print("  " + p, file=sys.stderr)
        return 1
    print("links: %d internal links in %d files, all resolve%s" % (checked, len(files), " (anchors also found in the built book)" if book_html else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
