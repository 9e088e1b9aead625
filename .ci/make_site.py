#!/usr/bin/env python3
"""Build minibp's lesson site from the notebooks, offline, and check every page in headless Chromium.

A tool of the repository, not of the package (like .ci/make_readme). From the repository's root:

    python .ci/make_site.py --out _site            # build: one page per notebook, with its stored outputs
    python .ci/make_site.py --out _site --check    # build, then open every page in Chromium; exit 1 on a problem

nbdev reads the notebooks: its `NBProcessor` parses the `#|` directives (`nbdev.process.extract_directives`) and its
processors hide cells and lines and add a `show_doc` entry after every exported name, as `nbdev_docs` does before it
hands the notebooks to Quarto. Quarto cannot be installed offline, so nbconvert renders the HTML, and a local copy of
MathJax (the `jupyter-server-mathjax` package) draws the math: the site loads nothing from another machine.
Notebook nbs/15_site.ipynb tests this file; .github/workflows/deploy.yaml publishes what it builds.
"""
from __future__ import annotations
import argparse, html, importlib, re, shutil, sys, tempfile
from pathlib import Path

# -- Which notebooks, in which order --------------------------------------------------------------------------------

def site_notebooks(nbs, # the notebooks' folder; FileNotFoundError if it holds no index.ipynb
                  ) -> list:
    "The notebooks of the site, in folder `nbs`: `index.ipynb` first, then the numbered ones (`00_...`) in order"
    nbs = Path(nbs)
    if not (nbs/'index.ipynb').exists(): raise FileNotFoundError(f"{nbs}: expected an index.ipynb there, found none")
    return [nbs/'index.ipynb'] + sorted(nbs.glob('[0-9]*.ipynb'))

def page_name(nb) -> str:
    "The HTML file name for notebook `nb`"
    return Path(nb).stem + '.html'

def page_title(nb) -> str:
    "The first `# ` heading of notebook `nb` (as nbformat or execnb reads it), else 'untitled'"
    for c in nb.cells:
        if c.cell_type == 'markdown' and (m := re.search(r'^# (.+)$', c.source, re.M)): return m.group(1).strip()
    return 'untitled'

# -- From notebook to page content: nbdev's processors, and two of ours -----------------------------------------------

def api_markdown(obj) -> str:
    "nbdev's `show_doc` Markdown for `obj`, without the source link, whose `{target=...}` is Quarto's syntax"
    from nbdev.showdoc import show_doc
    md = show_doc(obj)._repr_markdown_()
    return re.sub(r'^\[source\]\([^)]*\)\{[^}]*\}\s*$', '', md, flags=re.M).strip()

def quarto_options(cell):
    "Do what Quarto would do with the cell options nbdev leaves in a cell: `include: false` drops the cell, "
    "`echo: false` keeps only its outputs, `output: false` only its code; then the option lines go"
    from nbdev.process import first_code_ln
    if cell.cell_type != 'code': return
    opts = cell.directives_                        # nbdev's parse: {'echo:': ['false'], 'export': [], ...}
    if opts.get('include:') == ['false']:
        del cell['source']                         # nbdev drops a cell without a source
        return
    if opts.get('echo:') == ['false']: cell.metadata.setdefault('tags', []).append('remove_input')
    if opts.get('output:') == ['false']: cell.outputs = []
    lines = cell.source.splitlines(True)
    start = first_code_ln(lines)                   # the first line that is not a directive; None: there is no code
    cell.source = '' if start is None else ''.join(lines[start:])

class api_reference:
    "nbdev processor: each `show_doc(name)` cell that `add_show_docs` put after an exported cell becomes the Markdown "
    "`show_doc` writes for that name, found in the notebook's module (imported, so no kernel is needed)"
    def __init__(self, nb, lib='minibp'):
        exp = [c.directives_['default_exp'][0] for c in nb.cells if 'default_exp' in c.directives_]
        self.module = importlib.import_module(f'{lib}.{exp[0]}') if exp else None
        self.prev = None                           # the cell before, whose id names the entry: two builds are identical

    def __call__(self, cell):
        if not getattr(cell, 'has_sd', False):
            self.prev = cell
            return
        obj = self.module
        for part in re.fullmatch(r'show_doc\((.+)\)', cell.source).group(1).split('.'):   # `Var.relu` for a @patch
            obj = getattr(obj, part, None)
        if obj is None:                            # no module, or a name it does not have: no entry
            del cell['source']
            return
        for k in ('outputs', 'execution_count', 'has_sd'): cell.pop(k, None)
        cell.update(cell_type='markdown', source=api_markdown(obj), id=f"{self.prev.get('id', 'cell')}-{part}"[:64])

def prepare_nb(path, # a notebook file
              ):
    "The notebook at `path` as its page shows it: nbdev's processors, then ours; empty cells dropped"
    import nbformat
    from execnb.nbio import nb2str
    from nbdev.process import NBProcessor
    from nbdev.processors import populate_language, add_show_docs, strip_ansi, hide_line, filter_stream_, hide_
    from nbdev.processors import rm_header_dash, strip_hidden_metadata
    procs = [populate_language, add_show_docs, strip_ansi, hide_line, filter_stream_, rm_header_dash, hide_,
             quarto_options, api_reference, strip_hidden_metadata]
    nb = NBProcessor(path, procs, process=True).nb
    nb.cells = [c for c in nb.cells if c.source.strip() or c.get('outputs')]
    return nbformat.reads(nb2str(nb), as_version=4)   # nb2str drops nbdev's working keys (those ending in '_')

# -- Rendering a page ---------------------------------------------------------------------------------------------

CSS = """
body { font-family: -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif; margin: 0; color: #222;
       line-height: 1.5; }
nav.top { background: #2c3e50; padding: .5rem 1rem; position: sticky; top: 0; z-index: 10; }
nav.top a { color: #ecf0f1; margin-right: 1rem; text-decoration: none; font-size: .9rem; }
nav.top a.current { font-weight: bold; text-decoration: underline; }
.layout { display: flex; max-width: 1200px; margin: 0 auto; }
aside.toc { width: 220px; flex-shrink: 0; padding: 1rem; font-size: .85rem; position: sticky; top: 3rem;
            align-self: flex-start; }
aside.toc a { display: block; color: #2c3e50; text-decoration: none; margin: .2rem 0; }
aside.toc a.sub { padding-left: .8rem; font-size: .8rem; }
main { flex: 1; min-width: 0; padding: 1rem 2rem; }
div.input_area, div.highlight { background: #f7f7f7; border-radius: 4px; }
pre { padding: .5rem; overflow-x: auto; font-size: .85rem; }
div.output_area pre { background: none; border-left: 3px solid #f0a080; }
div.output_area img { max-width: 100%; }
div.prompt { display: none; }
table { border-collapse: collapse; } td, th { border: 1px solid #ddd; padding: .2rem .5rem; }
nav.pager { display: flex; justify-content: space-between; margin: 2rem 0; }
.description { font-style: italic; opacity: .75; font-size: 1.2rem; }
a.anchor-link { visibility: hidden; text-decoration: none; margin-left: .3rem; }
h1:hover a.anchor-link, h2:hover a.anchor-link, h3:hover a.anchor-link { visibility: visible; }
"""

# MathJax 2 from the page's own folder, drawing MathML (the browser's fonts: no web fonts to fetch); it sets
# window.minibpTypeset when the first typesetting is done, which the checker waits for.
MATHJAX_CFG = """MathJax.Hub.Config({tex2jax: {inlineMath: [['$','$'], ['\\\\(','\\\\)']], processEscapes: true},
  messageStyle: "none", "HTML-CSS": {availableFonts: [], preferredFont: null, webFont: "STIX-Web", imageFont: null}});
MathJax.Hub.Register.StartupHook("End Jax", function () { MathJax.Hub.setRenderer("NativeMML"); });
MathJax.Hub.Register.StartupHook("End", function () { window.minibpTypeset = true; });"""

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · minibp</title><link rel="icon" href="data:,">
<style>{css}</style>
<script type="text/x-mathjax-config">{mathjax}</script>
<script src="mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full"></script>
</head><body>
<nav class="top">{top}</nav>
<div class="layout"><aside class="toc"><strong>On this page</strong>{toc}</aside>
<main>{body}
<nav class="pager">{prev}{next}</nav></main></div>
</body></html>"""

def html_body(nb) -> str:
    "nbconvert's `basic` HTML for the prepared notebook `nb`: cells, outputs, images as data, headings with anchors"
    from nbconvert import HTMLExporter
    from traitlets.config import Config
    cfg = Config({'TagRemovePreprocessor': {'enabled': True, 'remove_input_tags': ('remove_input',)}})
    exporter = HTMLExporter(config=cfg, template_name='basic', exclude_input_prompt=True, exclude_output_prompt=True)
    body,_ = exporter.from_notebook_node(nb)
    return body.replace('<blockquote>', '<blockquote class="description">', 1)   # the summary under the title

def render_page(nb_path, pages:list, titles:dict, src=None) -> str:
    "The HTML page of notebook `nb_path`, one of `pages` (whose `titles` the navigation shows); `src`: executed copy"
    from pygments.formatters import HtmlFormatter
    nb_path = Path(nb_path)
    body = html_body(prepare_nb(src or nb_path))
    def link(p, text): return f'<a href="{page_name(p)}">{html.escape(text)}</a>'
    top = ''.join(f'<a href="{page_name(p)}"{" class=current" if p == nb_path else ""}>'
                  f'{html.escape("home" if p.stem == "index" else p.stem)}</a>' for p in pages)
    toc = ''.join(f'<a{" class=sub" if h == "3" else ""} href="#{a}">{re.sub("<[^>]+>|¶", "", t)}</a>'
                  for h,a,t in re.findall(r'<h([23]) id="([^"]+)">(.*?)</h[23]>', body))
    i = pages.index(nb_path)
    prev = link(pages[i-1], f'← {titles[pages[i-1]]}') if i > 0 else '<span></span>'
    nxt = link(pages[i+1], f'{titles[pages[i+1]]} →') if i + 1 < len(pages) else '<span></span>'
    return PAGE.format(title=html.escape(titles[nb_path]), css=CSS + HtmlFormatter().get_style_defs('.highlight'),
                       mathjax=MATHJAX_CFG, top=top, toc=toc, body=body, prev=prev, next=nxt)

# -- The whole site -----------------------------------------------------------------------------------------------

def execute_notebooks(pages:list, dest) -> list:
    "Copies of `pages` in folder `dest`, re-executed in their own folder's place (the sources are not touched)"
    import nbformat
    from nbconvert.preprocessors import ExecutePreprocessor
    out = []
    for p in pages:
        nb = nbformat.read(p, as_version=4)
        if any(c.cell_type == 'code' for c in nb.cells):           # a notebook of text alone needs no kernel
            ep = ExecutePreprocessor(timeout=1800, extra_arguments=['--IPKernelApp.log_level=ERROR'])  # no warnings
            ep.preprocess(nb, {'metadata': {'path': str(p.parent)}})
        nbformat.write(nb, Path(dest)/p.name)
        out.append(Path(dest)/p.name)
    return out

def copy_images(page:str, nbs:Path, build:Path):
    "Copy into `build` the image files that the HTML `page` links to, relative to the notebooks' folder `nbs`"
    for src in re.findall(r'<img[^>]+src="([^":]+)"', page):
        if (nbs/src).is_file():
            (build/src).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(nbs/src, build/src)

def build_site(nbs='nbs',          # the notebooks' folder
               out='_site',        # where to write the site (replaced whole, once the new one is complete)
               execute:bool=False, # re-execute the notebooks first, in copies (default: their stored outputs)
              ) -> list:
    "Render every notebook in `nbs` (index first, lessons in order) into the folder `out`; the pages written"
    from execnb.nbio import read_nb
    from jupyter_server_mathjax import __file__ as mathjax
    nbs,out = Path(nbs),Path(out)
    pages = site_notebooks(nbs)
    tmp = Path(tempfile.mkdtemp(prefix='minibp_site_'))
    try:
        srcs = execute_notebooks(pages, tmp) if execute else pages
        titles = {p: page_title(read_nb(s)) for p,s in zip(pages, srcs)}
        build = tmp/'site'
        shutil.copytree(Path(mathjax).parent/'static', build/'mathjax')
        for p,s in zip(pages, srcs):
            page = render_page(p, pages, titles, src=s)
            (build/page_name(p)).write_text(page, encoding='utf-8')
            copy_images(page, nbs, build)
        if out.exists(): shutil.rmtree(out)
        shutil.move(str(build), out)                  # the finished site replaces the old one in one step
    finally: shutil.rmtree(tmp, ignore_errors=True)
    return [out/page_name(p) for p in pages]

# -- Checking the site in a real browser --------------------------------------------------------------------------

CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
                 '--disable-component-update', '--no-first-run', '--disable-sync', '--disable-quic']

def find_chromium():
    "Path of a Chromium executable (`$CHROMIUM`, or `chromium`/`chromium-browser` on the PATH), else None"
    import os
    return os.environ.get('CHROMIUM') or shutil.which('chromium') or shutil.which('chromium-browser')

def serve(folder):
    "A quiet HTTP server for `folder` on 127.0.0.1, on a free port, in a daemon thread"
    import http.server, threading, functools
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args): pass
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(Quiet, directory=str(folder)))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv

def blank(png:bytes) -> bool:
    "Whether a screenshot is (nearly) one flat colour: at most 8 distinct colours"
    import io
    from PIL import Image
    return Image.open(io.BytesIO(png)).convert('RGB').getcolors(maxcolors=8) is not None

# What a page holds once loaded: images that failed, links, anchors, paragraphs with TeX left raw
PAGE_JS = r"""() => ({
  badImages: [...document.images].filter(i => !i.complete || i.naturalWidth === 0)
                                 .map(i => (i.getAttribute('src') || '').slice(0, 80)),
  links: [...document.querySelectorAll('a[href]')].map(a => a.getAttribute('href')),
  ids: [...document.querySelectorAll('[id]')].map(e => e.id),
  rawMath: [...document.querySelectorAll('main p, main li')]
             .filter(e => /\$\$|\\frac|\\partial/.test(e.innerText)).length
})"""
TYPESET_JS = ('() => !window.MathJax || window.minibpTypeset === true'
              ' && MathJax.Hub.queue.running === 0 && MathJax.Hub.queue.pending === 0')

def watch(page, base:str, say):
    "Report through `say` the console and script errors of a Playwright `page`, and requests that fail or leave `base`"
    page.on('console', lambda m: m.type == 'error' and say(f'console error: {m.text}'))
    page.on('pageerror', lambda e: say(f'script error: {e}'))
    page.on('request', lambda r: not r.url.startswith((base, 'data:')) and say(f'request leaves the machine: {r.url}'))
    page.on('requestfailed', lambda r: say(f'request failed: {r.url}'))
    page.on('response', lambda r: r.status >= 400 and say(f'HTTP {r.status}: {r.url}'))

def check_page(ctx, base:str, p:Path, say, screenshots=None) -> tuple:
    "Open page `p` of the site served at `base` in the browser context `ctx`; its (ids, links) for the link check"
    page = ctx.new_page()
    watch(page, base, say)
    page.goto(base + p.name, wait_until='load')     # scripts, styles and images are in; then MathJax's typesetting
    page.wait_for_function(TYPESET_JS, timeout=30_000)
    info = page.evaluate(PAGE_JS)
    for src in info['badImages']: say(f'image did not load: {src}')
    if info['rawMath']: say(f"{info['rawMath']} paragraphs with unrendered math")
    png = page.screenshot(full_page=False)
    if blank(png): say('the screenshot is blank')
    if screenshots: (Path(screenshots)/f'{p.stem}.png').write_bytes(png)
    page.close()
    return set(info['ids']), info['links']

def dead_links(found:dict) -> list:
    "Links between the pages of `found` ({page: (ids, links)}) to a page or an anchor that is not there"
    problems = []
    for name,(ids,links) in found.items():
        for href in links:
            if re.match(r'^[a-z]+:', href): continue                 # links out (https:, mailto:) are not followed
            target,_,anchor = href.partition('#')
            target = target or name
            if target not in found: problems.append(f'{name}: dead link {href}: no page {target}')
            elif anchor and anchor not in found[target][0]:
                problems.append(f'{name}: dead link {href}: no anchor #{anchor} in {target}')
    return problems

def _check_site(site:Path, exe:str, screenshots) -> list:
    from playwright.sync_api import sync_playwright
    pages = sorted(site.glob('*.html'))
    if not pages: raise FileNotFoundError(f"check_site: {site} holds no .html pages: build the site first")
    if screenshots: Path(screenshots).mkdir(parents=True, exist_ok=True)
    srv = serve(site)
    base = f'http://127.0.0.1:{srv.server_address[1]}/'
    problems,found = [],{}
    try:
        with sync_playwright() as pw, tempfile.TemporaryDirectory() as profile:
            ctx = pw.chromium.launch_persistent_context(profile, executable_path=exe, headless=True, args=CHROMIUM_ARGS,
                                                        viewport={'width': 1280, 'height': 900})
            # a request for anything not served here is reported (by `watch`) and never sent
            ctx.route('**/*', lambda r: r.continue_() if r.request.url.startswith((base, 'data:')) else r.abort())
            for p in pages:
                say = lambda msg, p=p: problems.append(f'{p.name}: {msg}')   # noqa: E731
                found[p.name] = check_page(ctx, base, p, say, screenshots)
            ctx.close()
    finally: srv.shutdown()
    return problems + dead_links(found)

def check_site(site,             # the built site's folder
               chromium=None,    # the Chromium executable (default: `find_chromium()`); FileNotFoundError if none
               screenshots=None, # a folder to save each page's screenshot in (default: none saved)
              ) -> list:
    "Open every page of the built `site` in headless Chromium, served from 127.0.0.1; the problems found, [] if none"
    from concurrent.futures import ThreadPoolExecutor
    exe = chromium or find_chromium()
    if not exe:
        raise FileNotFoundError("check_site: no Chromium found: install Debian's chromium package or set $CHROMIUM")
    with ThreadPoolExecutor(1) as ex:   # Playwright's sync API refuses to run in a running event loop (Jupyter's)
        return ex.submit(_check_site, Path(site), exe, screenshots).result()

# -- The command --------------------------------------------------------------------------------------------------

def main(argv=None) -> int:
    "Build the site; with --check, check it in Chromium and return 1 on any problem"
    ap = argparse.ArgumentParser(prog='make_site.py', description=__doc__.splitlines()[0])
    ap.add_argument('--nbs', default='nbs', help='the notebooks folder (default: nbs)')
    ap.add_argument('--out', default='_site', help='where to write the site, replaced whole (default: _site)')
    ap.add_argument('--execute', action='store_true', help='re-execute the notebooks first (default: stored outputs)')
    ap.add_argument('--check', action='store_true', help='then open every page in headless Chromium')
    ap.add_argument('--screenshots', help="with --check: a folder for each page's screenshot")
    a = ap.parse_args(argv)
    if a.check and not find_chromium():        # before building: the build takes a while
        ap.error("--check needs Chromium: install Debian's chromium package, or set $CHROMIUM to a Chromium program")
    built = build_site(a.nbs, a.out, a.execute)
    print(f"{len(built)} pages written to {a.out}/ (open {a.out}/index.html)")
    if not a.check: return 0
    problems = check_site(a.out, screenshots=a.screenshots)
    print('\n'.join(problems) or f'all {len(built)} pages fine in Chromium')
    return 1 if problems else 0

if __name__ == '__main__':
    sys.path.insert(0, str(Path.cwd()))   # the checkout's minibp, for the API reference, when it is not installed
    sys.exit(main())
