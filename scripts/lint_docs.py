#!/usr/bin/env python3
"""scripts/lint_docs.py — part of `make lint`: the mechanical statements of the documentation are true.

  - every relative Markdown link ([text](path#anchor)) of README.md, CONTRIBUTING.md,
    CHANGELOG.md, docs/*.md and clients/node/README.md names a file that exists, and its anchor
    a heading of that file (GitHub's slugs);
  - every file path a document names in backquotes (`src/...`, `test/t/020_caps.pl`, ...) exists,
    relative to the document's folder or to the repository root; paths with placeholders
    (NAME, NNN, <feature>, *, $(...), ...) are skipped;
  - every docs/*.md that a source comment, script or Makefile names exists;
  - every docs/*.md is linked from README.md;
  - docs/configuration.md's settings table lists exactly the GUCs the sources define;
  - every `poolguard.NAME` a document names is a SQL object of extension/*.sql, a GUC, or the
    policy table's column.
Prints one line per problem and exits 1 if any.
"""
import os
import re
import sys

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
DOCS = ['README.md', 'CONTRIBUTING.md', 'CHANGELOG.md', 'clients/node/README.md']
# Top-level folders whose paths documents name; a backquoted token starting with one is a path.
PATH_ROOTS = ('src/', 'test/', 'docs/', 'scripts/', 'extension/', 'versions/', 'bench/', 'clients/', 'examples/',
              'debian/', '.ci/')
PLACEHOLDER = re.compile(r'[*<>$]|\.\.\.|…|NAME|NNN|\bNN\b|\bX\b|\bF\b')
# ... or any token with a folder and a file extension (`sql/privileges.sql`, `test/apps/guide.js`).
FILE_LIKE = re.compile(r'^[\w.\-]+/[\w./\-]*\.(sql|cpp|h|pl|pm|spec|out|py|sh|md|js|mjs|json|conf|yaml)$')
SOURCE_EXTS = ('.cpp', '.h', '.py', '.sh', '.sql', '.pl', '.pm', '.js', '.mjs')

problems = []


def rel(path):
    return os.path.relpath(path, ROOT)


def doc_files():
    files = [os.path.join(ROOT, d) for d in DOCS]
    docs = os.path.join(ROOT, 'docs')
    if os.path.isdir(docs):
        files += [os.path.join(docs, n) for n in sorted(os.listdir(docs)) if n.endswith('.md')]
    return [f for f in files if os.path.exists(f)]


def slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r'`', '', heading.strip().lower())
    text = re.sub(r'[^\w\- ]', '', text)
    return text.replace(' ', '-')


def anchors(path):
    result = set()
    in_code = False
    with open(path, encoding='utf-8') as f:
        for line in f:
            if line.startswith('```'):
                in_code = not in_code
            elif not in_code and line.startswith('#'):
                result.add(slug(line.lstrip('#')))
    return result


def without_code_blocks(text):
    """The text with fenced code blocks blanked (line numbers kept)."""
    out, in_code = [], False
    for line in text.split('\n'):
        if line.startswith('```'):
            in_code = not in_code
            out.append('')
        else:
            out.append('' if in_code else line)
    return '\n'.join(out)


def exists(doc_dir, target):
    target = target.rstrip('/')
    return any(os.path.exists(os.path.normpath(os.path.join(base, target))) for base in (doc_dir, ROOT))


def check_doc(path):
    with open(path, encoding='utf-8') as f:
        text = without_code_blocks(f.read())
    doc_dir = os.path.dirname(path)
    for lineno, line in enumerate(text.split('\n'), 1):
        for m in re.finditer(r'\]\(([^)\s]+)\)', line):
            target = m.group(1)
            if re.match(r'[a-z]+:', target):
                continue
            file_part, _, anchor = target.partition('#')
            file_path = os.path.normpath(os.path.join(doc_dir, file_part)) if file_part else path
            if not os.path.exists(file_path):
                problems.append('%s:%d: link to %s: no such file' % (rel(path), lineno, target))
            elif anchor and file_path.endswith('.md') and anchor not in anchors(file_path):
                problems.append('%s:%d: link to %s: no heading with that anchor' % (rel(path), lineno, target))
        for m in re.finditer(r'`([^`\s]+)`', line):
            token = m.group(1)
            token = re.sub(r'^PROVE_TESTS=', '', token)
            if not (token.startswith(PATH_ROOTS) or FILE_LIKE.search(token)) or PLACEHOLDER.search(token):
                continue
            token = token.split('#')[0].split(':')[0]
            if not exists(doc_dir, token):
                problems.append('%s:%d: names `%s`: no such file or folder' % (rel(path), lineno, token))
        for m in re.finditer(r'PROVE_TESTS=(\S+)', line):
            token = m.group(1).strip('`\'"')
            if not PLACEHOLDER.search(token) and not exists(doc_dir, token):
                problems.append('%s:%d: names `%s`: no such file' % (rel(path), lineno, token))


def check_sources_name_docs():
    for top, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in ('.git', 'node_modules', 'tmp_check', 'build', 'results', 'dist')]
        for name in files:
            if not (name.endswith(SOURCE_EXTS) or name == 'Makefile'):
                continue
            path = os.path.join(top, name)
            with open(path, encoding='utf-8', errors='replace') as f:
                for lineno, line in enumerate(f, 1):
                    for m in re.finditer(r'\bdocs/[\w\-]+\.md', line):
                        if not os.path.exists(os.path.join(ROOT, m.group(0))):
                            problems.append('%s:%d: names %s: no such file' % (rel(path), lineno, m.group(0)))


def check_readme_links_docs():
    readme = os.path.join(ROOT, 'README.md')
    with open(readme, encoding='utf-8') as f:
        text = f.read()
    for path in doc_files():
        if rel(path).startswith('docs/') and '(%s)' % rel(path) not in text:
            problems.append('README.md: does not link %s' % rel(path))


def defined_gucs():
    names = set()
    for top, _, files in os.walk(os.path.join(ROOT, 'src')):
        for name in files:
            if name.endswith('.cpp'):
                with open(os.path.join(top, name), encoding='utf-8') as f:
                    names |= set(re.findall(r'DefineCustom\w+Variable\(\s*"(poolguard\.\w+)"', f.read()))
    return names


def sql_objects():
    names = set()
    ext = os.path.join(ROOT, 'extension')
    for name in sorted(os.listdir(ext)):
        if name.endswith('.sql'):
            with open(os.path.join(ext, name), encoding='utf-8') as f:
                names |= set(re.findall(r'CREATE\s+(?:OR\s+REPLACE\s+)?(?:FUNCTION|VIEW|TABLE|TRIGGER)\s+(poolguard\.\w+)',
                                        f.read(), re.I))
    return names


def check_names():
    gucs = defined_gucs()
    path = os.path.join(ROOT, 'docs', 'configuration.md')
    if os.path.exists(path):
        with open(path, encoding='utf-8') as f:
            documented = set(re.findall(r'^\| `(poolguard\.\w+)`', f.read(), re.M))
        for name in sorted(gucs - documented):
            problems.append('docs/configuration.md: GUC %s is not in the settings table' % name)
        for name in sorted(documented - gucs):
            problems.append('docs/configuration.md: the settings table lists %s, which no source defines' % name)
    known = gucs | sql_objects() | {'poolguard.policy'}
    for doc in doc_files():
        with open(doc, encoding='utf-8') as f:
            text = without_code_blocks(f.read())
        for lineno, line in enumerate(text.split('\n'), 1):
            for m in re.finditer(r'`(poolguard\.[a-z_]+)', line):
                if m.group(1) not in known:
                    problems.append('%s:%d: names %s: no such SQL object or setting' % (rel(doc), lineno, m.group(1)))


def main():
    for path in doc_files():
        check_doc(path)
    check_sources_name_docs()
    check_readme_links_docs()
    check_names()
    for p in problems:
        print(p)
    if problems:
        print('lint_docs: %d problem(s) (rules: scripts/lint_docs.py)' % len(problems))
        return 1
    print('lint_docs: ok')
    return 0


if __name__ == '__main__':
    sys.exit(main())
