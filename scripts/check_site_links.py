"""Check links without the network: every relative link / image of the built site resolves (file and anchor),
and every link to this repository's own files on GitHub (README, docs) names a file that exists in the tree.

    python scripts/check_site_links.py site            # after `mkdocs build --site-dir site`
    python scripts/check_site_links.py site --markdown README.md docs CHANGELOG.md
Exit code 1 lists every broken link.
"""

from __future__ import annotations

import argparse
import re
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

ROOT = Path(__file__).resolve().parents[1]
REPO_URLS = (  # links into this repository's main branch → path in the tree
    "https://github.com/napari-spatial-impute/napari-spatial-impute/blob/main/",
    "https://github.com/napari-spatial-impute/napari-spatial-impute/tree/main/",
    "https://raw.githubusercontent.com/napari-spatial-impute/napari-spatial-impute/main/",
)


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"])
        if tag == "a" and a.get("name"):
            self.ids.add(a["name"])
        for key in ("href", "src"):
            if a.get(key) and tag in ("a", "img", "link", "script", "source"):
                self.links.append(a[key])


def _parse(path: Path) -> _Links:
    p = _Links()
    p.feed(path.read_text(encoding="utf-8", errors="replace"))
    return p


def check_site(site: Path) -> list[str]:
    # 404.html is served at any URL, so its links are site-absolute by design
    pages = sorted(p for p in site.rglob("*.html") if p.name != "404.html")
    parsed = {p.resolve(): _parse(p) for p in pages}
    bad, n = [], 0
    for page, links in parsed.items():
        for link in links.links:
            parts = urlsplit(link)
            if parts.scheme or link.startswith(("//", "mailto:", "javascript:")):
                continue
            n += 1
            if not parts.path:  # "#anchor" on the same page
                target = page
            else:
                target = (page.parent / unquote(parts.path)).resolve()
                if target.is_dir():
                    target = target / "index.html"
            if not target.exists():
                bad.append(f"{page.relative_to(site.resolve())}: {link} -> missing {target}")
                continue
            if parts.fragment and target.suffix == ".html":
                ids = parsed[target].ids if target in parsed else _parse(target).ids
                if unquote(parts.fragment) not in ids:
                    bad.append(f"{page.relative_to(site.resolve())}: {link} -> no anchor #{parts.fragment}")
    print(f"site: {len(pages)} pages, {n} relative links/images checked")
    return bad


def check_markdown(paths: list[Path]) -> list[str]:
    files = [f for p in paths for f in ([p] if p.is_file() else sorted(p.rglob("*.md")))]
    bad, n = [], 0
    for f in files:
        text = f.read_text(encoding="utf-8")
        for url in re.findall(r"https?://[^\s)\"'>\]]+", text):
            for prefix in REPO_URLS:
                if url.startswith(prefix):
                    n += 1
                    rel = unquote(urlsplit(url[len(prefix):]).path).rstrip("/")
                    if not (ROOT / rel).exists():
                        bad.append(f"{f.relative_to(ROOT)}: {url} -> {rel} is not in the repository")
        if f.name == "README.md" and f.parent == ROOT:  # relative links break on PyPI / the napari hub
            for target in re.findall(r"\]\(([^)#\s]+)", text):
                if not urlsplit(target).scheme:
                    bad.append(f"README.md: relative link {target} (use an absolute URL: PyPI / napari hub)")
    print(f"markdown: {len(files)} files, {n} links to this repository's files checked")
    return bad


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("site", type=Path)
    ap.add_argument("--markdown", nargs="*", type=Path, default=[ROOT / "README.md", ROOT / "docs",
                                                                 ROOT / "CHANGELOG.md"])
    args = ap.parse_args()
    bad = check_site(args.site) + check_markdown([p for p in args.markdown if p.exists()])
    for b in bad:
        print("BROKEN", b)
    print(f"{len(bad)} broken link(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
