"""Checks a gallery folder written by `cnnvis demo` (and `cnnvis evaluate`): every page parses,
every linked file exists, every method has a row per view in the index and one on every image
page, and (with --evaluated) the evaluation page has a row per method and is linked.

With --synthesis, the index and synthesis.html also have a row of existing pictures for each
synthesis section (filters, filters-lucid, classes, classes-lucid, inversions, dreams).

usage: check_gallery.py FOLDER METHOD... [--images N] [--evaluated] [--synthesis]
"""
import json
import os
import sys
from html.parser import HTMLParser


class Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links = []      # src and href values
        self.rows = []       # (data-method, data-view) of <tr> elements
        self.headers = 0     # <th> cells
        self.synthesis = []  # data-synthesis of <tr> elements

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for key in ("src", "href"):
            if key in a:
                self.links.append(a[key])
        if tag == "tr" and "data-method" in a:
            self.rows.append((a["data-method"], a.get("data-view")))
        if tag == "th":
            self.headers += 1
        if tag == "tr" and "data-synthesis" in a:
            self.synthesis.append(a["data-synthesis"])


def parse(path):
    page = Page()
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if not text.startswith("<!DOCTYPE html>") or not text.rstrip().endswith("</html>"):
        raise SystemExit(f"{path}: not a complete HTML document")
    page.feed(text)
    page.close()
    return page


def main():
    args = sys.argv[1:]
    evaluated = "--evaluated" in args
    synthesis = "--synthesis" in args
    args = [a for a in args if a not in ("--evaluated", "--synthesis")]
    images = None
    if "--images" in args:
        i = args.index("--images")
        images = int(args[i + 1])
        del args[i:i + 2]
    folder, methods = args[0], args[1:]
    errors = []
    gallery = json.load(open(os.path.join(folder, "gallery.json")))
    views = {m["name"]: [v["name"] for v in m["views"]] for m in gallery["methods"]}
    if images is not None and len(gallery["images"]) != images:
        errors.append(f"gallery.json has {len(gallery['images'])} images, want {images}")
    pages = ["index.html"] + [f"image_{im['stem']}.html" for im in gallery["images"]]
    if evaluated:
        pages.append("evaluation.html")
    if synthesis:
        pages.append("synthesis.html")
    checked = 0
    for name in pages:
        path = os.path.join(folder, name)
        if not os.path.exists(path):
            errors.append(f"{name}: missing")
            continue
        page = parse(path)
        for link in page.links:
            target = os.path.join(folder, link.split("#")[0])
            checked += 1
            if not os.path.isfile(target):
                errors.append(f"{name}: links {link}, which does not exist")
        methods_here = {m for m, _ in page.rows}
        for m in methods if name != "synthesis.html" and not name.startswith("evaluation_") else []:
            if m not in methods_here:
                errors.append(f"{name}: no row for method {m}")
        if name in ("index.html", "synthesis.html") and synthesis:
            if "synthesis.html" not in page.links:
                errors.append(f"{name}: does not link synthesis.html")
            for section in ("filters", "filters-lucid", "classes", "classes-lucid",
                            "inversions", "dreams"):
                if section not in page.synthesis:
                    errors.append(f"{name}: no synthesis row {section}")
        if name == "index.html":
            for m in methods:
                for v in views.get(m, []):
                    if (m, v) not in page.rows:
                        errors.append(f"index.html: no row for {m}: {v}")
            if page.headers != len(gallery["images"]) + 1:
                errors.append(f"index.html: {page.headers} header cells for "
                              f"{len(gallery['images'])} images")
            if evaluated and "evaluation.html" not in page.links:
                errors.append("index.html: does not link evaluation.html")
            if synthesis:
                sections = {s["name"]: s for s in gallery.get("synthesis", [])}
                for name, section in sections.items():
                    if not section["items"]:
                        errors.append(f"gallery.json: synthesis {name} has no pictures")
                    for item in section["items"]:
                        if item["file"] not in page.links:
                            errors.append(f"index.html: does not show {item['file']}")
        if name == "evaluation.html":
            for m in methods:  # each method's row links to its pictures and its own page
                for link in (f"index.html#method-{m}", f"evaluation_{m}.html"):
                    if link not in page.links:
                        errors.append(f"evaluation.html: {m}'s row does not link {link}")
                if f"evaluation_{m}.html" not in pages:
                    pages.append(f"evaluation_{m}.html")  # checked in turn: its pictures exist
    for m in methods:
        if m not in views:
            errors.append(f"gallery.json: no method {m}")
    if errors:
        print("\n".join("FAIL: " + e for e in errors))
        sys.exit(1)
    print(f"gallery ok: {len(pages)} pages, {checked} links, {len(methods)} methods")


main()
