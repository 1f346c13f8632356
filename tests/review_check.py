#!/usr/bin/env python3
"""Independent check of `burstwatch review`'s page: parses the HTML with the standard
library, lists every alert row with the files it links, and says which linked files are
missing. Prints one JSON object: {"cameras": [...], "rows": N, "ids": [...],
"snapshots": N, "clips": N, "missing": [...]}."""

import json
import os
import sys
from html.parser import HTMLParser
from urllib.parse import unquote


class Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.cameras = []
        self.rows = []
        self.links = []  # (kind, href)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table" and "alerts" in a.get("class", ""):
            self.cameras.append(a.get("data-camera"))
        elif tag == "tr" and a.get("class") == "alert":
            self.rows.append(a.get("id"))
        elif tag == "img":
            self.links.append(("snapshot", a["src"]))
        elif tag == "video":
            self.links.append(("clip", a["src"]))
        elif tag == "a" and "href" in a:
            self.links.append(("link", a["href"]))


def main(path):
    page = Page()
    with open(path, encoding="utf-8") as f:
        page.feed(f.read())
    base = os.path.dirname(os.path.abspath(path))
    missing = []
    for kind, href in page.links:
        target = unquote(href)
        if not os.path.isabs(target):
            target = os.path.join(base, target)
        if not os.path.isfile(target):
            missing.append(href)
    print(json.dumps({
        "cameras": page.cameras,
        "rows": len(page.rows),
        "ids": page.rows,
        "snapshots": sum(1 for k, _ in page.links if k == "snapshot"),
        "clips": sum(1 for k, _ in page.links if k == "clip"),
        "missing": missing,
    }))


if __name__ == "__main__":
    main(sys.argv[1])
