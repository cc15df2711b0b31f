#!/usr/bin/env python3
"""scripts/lint.py — `make lint`: the structural rules of pg_poolguard's sources (docs/architecture.md).

Python 3 standard library only.  Prints one line per violation (file:line: rule: text) and exits
non-zero when there is any.  Rules:

  layers    an #include in src/ points down the layer order or within its own feature, never up
            or across (LAYERS below; a file's feature is its folder under src/; the module entry
            src/pg_poolguard.cpp is the top).  src/core/ is the bottom layer; its features
            (src/core/<feature>/) may include only themselves.  From outside its folder a
            feature is reached only through its public header src/<feature>/<feature>.h (pg/
            and core/ export every header).
  guard     core/no_server_headers.h (the build error when a server header reaches plain C++) is
            the last #include of every .cpp under src/core/ and is included nowhere else — never
            by a header, which would make the header unusable after postgres.h.
  core      a file under src/core/ includes only src/core/ headers and system headers.
  boundary  PostgreSQL's headers are included only by postgres_headers.h (inside extern "C").
  assembled an errmsg() primary message is one literal format: it is not a bare "%s", and none of
            its arguments is a piece of English — a `cond ? "..." : "..."` with a word in it, or a
            variable the same file assigns a string literal to (e.g. a verb chosen by dry_run).
            Values such as "on"/"off" are not pieces.
  cannot    "cannot" in an errmsg() is for what is never allowed; a failed attempt says
            "could not": flagged are "cannot <verb>" with a verb of an attempt (resolve, connect,
            open, read, write, start, send, bind, listen, allocate, load, find, parse, publish,
            register, reach) and a "cannot" message that ends in a cause (": %s" or "%m").
  style     errmsg(): starts lower case (an all-caps word such as PREPARE is fine), has no
            trailing period, and is one clause (no "; ").  errdetail()/errhint() (and the GUC_check_
            variants): a full sentence — starts with a capital letter, a placeholder or an
            identifier (a word with "." "_" or "()"), and ends with a period; "%s" alone passes an
            error's own detail through.  In every message SQL's NULL is written "NULL".
  sqlnames  the C function behind each SQL function is named after it:
            CREATE FUNCTION poolguard.X(...) ... AS 'MODULE_PATHNAME', 'poolguard_X' (or
            'poolguard_X_1_1': the entry point of the release whose signature it serves, as
            pg_stat_statements names them; the released scripts in versions/ keep their names).
  oneplace  what must exist once stays in one file: the PG_TRY/CopyErrorData recovery in
            src/pg/guard.h (run_catching_errors), the walk of the backend-status array
            (pgstat_fetch_stat_local_beentry) in src/enforce/sessions.cpp
            (backend_status_snapshot), the exemption test (superuser_arg on a session's role) in
            src/enforce/ (session_exempt and the signal path's superuser refusal).
  schedule  every test/sql/*.sql test is listed once in test/sql/schedule and every listed test exists;
            every extension/*.sql fragment is in the Makefile's SQL_PARTS.
"""
import os
import re
import sys

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
SRC = os.path.join(ROOT, 'src')

# The layer order, bottom first: a feature may include itself and the features before it.
LAYERS = ['core', 'pg', 'stats', 'invalidation', 'policy', 'enforce', 'caps', 'reaper', 'metrics',
          'worker', 'module']

GUARD = 'core/no_server_headers.h'
ATTEMPT_VERBS = ('resolve', 'connect', 'open', 'read', 'write', 'start', 'send', 'bind', 'listen',
                 'allocate', 'load', 'find', 'parse', 'publish', 'register', 'reach')
VALUE_LITERALS = {'on', 'off', 'true', 'false', ''}

problems = []


def rel(path):
    return os.path.relpath(path, ROOT)


def report(path, line, rule, text):
    problems.append((rel(path), line, rule, ' '.join(text.split())))


def sources():
    for base, dirs, files in os.walk(SRC):
        dirs.sort()
        for name in sorted(files):
            if name.endswith(('.h', '.cpp')):
                yield os.path.join(base, name)


def feature_of(path):
    """(layer index, feature name) of a file under src/, or None if it is not in the table."""
    r = os.path.relpath(path, SRC)
    parts = r.split(os.sep)
    if parts[0] == 'core':
        return 0, 'core/' + parts[1] if len(parts) > 2 else 'core'
    if len(parts) > 1 and parts[0] in LAYERS:
        return LAYERS.index(parts[0]), parts[0]
    if r == 'pg_poolguard.cpp':
        return LAYERS.index('module'), 'module'
    return None


def public_header(target, includer_feature):
    """May a file of includer_feature include target?  Within a folder, anything; from outside,
    only the folder's public header <feature>/<feature>.h.  pg/ (the boundary toolkit) and
    core/<feature>/ (small unit-tested modules) export every header."""
    r = os.path.relpath(target, SRC).split(os.sep)
    if len(r) != 2 or r[0] in ('pg', 'core') or r[0] not in LAYERS:
        return True
    if includer_feature[1] == r[0]:
        return True
    return r[1] == r[0] + '.h'


INCLUDE = re.compile(r'^\s*#\s*include\s+([<"])([^>"]+)[>"]')


def includes(path):
    with open(path, encoding='utf-8') as f:
        for n, line in enumerate(f, 1):
            m = INCLUDE.match(line)
            if m:
                yield n, m.group(1) == '"', m.group(2)


def resolve(path, name):
    """The file a quoted include names: next to the includer first, then under src/ (-Isrc)."""
    for base in (os.path.dirname(path), SRC):
        candidate = os.path.normpath(os.path.join(base, name))
        if os.path.isfile(candidate):
            return candidate
    return None


def own_basenames():
    return {os.path.basename(p) for p in sources()}


def check_includes():
    for path in sources():
        in_core = rel(path).startswith('src/core/')
        own = feature_of(path)
        if own is None:
            report(path, 1, 'layers', 'file has no layer: add it to a feature folder (scripts/lint.py)')
            continue
        quoted = [(n, name) for n, q, name in includes(path) if q]
        for n, name in quoted:
            target = resolve(path, name)
            if target is None:
                if os.path.basename(path) == 'postgres_headers.h':
                    pass  # PostgreSQL's own headers: this is the one file that includes them
                elif os.path.basename(name) in own_basenames():
                    report(path, n, 'layers', '#include "%s" names no file: write it relative to src/' % name)
                else:
                    report(path, n, 'boundary', '#include "%s": server headers come only through '
                           'postgres_headers.h' % name)
                continue
            if rel(target) == 'src/' + GUARD:
                continue
            theirs = feature_of(target)
            if in_core and not rel(target).startswith('src/core/'):
                report(path, n, 'core', '#include "%s": src/core/ includes only src/core/ headers' % name)
                continue
            if theirs is None:
                report(target, 1, 'layers', 'file has no layer: add it to a feature folder (scripts/lint.py)')
                continue
            if not public_header(target, own):
                report(path, n, 'layers', '#include "%s": only %s/%s.h is public outside its folder'
                       % (name, theirs[1], theirs[1]))
            if theirs[0] > own[0]:
                report(path, n, 'layers', '#include "%s" points up: %s is above %s' % (name, theirs[1], own[1]))
            elif theirs[0] == own[0] and theirs[1] != own[1]:
                report(path, n, 'layers', '#include "%s" points across: %s and %s' % (name, theirs[1], own[1]))
        # The boundary guard: last include of every src/core .cpp, nowhere else.
        guard_lines = [n for n, name in quoted if name.endswith('no_server_headers.h')]
        all_lines = [n for n, _, _ in includes(path)]
        if in_core and path.endswith('.cpp'):
            if not guard_lines:
                report(path, 1, 'guard', 'a src/core .cpp must include "%s" last' % GUARD)
            elif guard_lines[-1] != all_lines[-1] or len(guard_lines) > 1:
                report(path, guard_lines[0], 'guard', '"%s" must be the last #include, once' % GUARD)
        elif guard_lines:
            report(path, guard_lines[0], 'guard',
                   '"%s" belongs only at the end of a src/core .cpp, never in a header or glue' % GUARD)


# ---- messages ---------------------------------------------------------------------------------

def strip_comments(text):
    """Blanks comments, keeping string literals and line numbers."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if c == '"' or c == "'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == '\\' else 1
            out.append(text[i:j + 1])
            i = j + 1
        elif text.startswith('//', i):
            j = text.find('\n', i)
            j = n if j < 0 else j
            out.append(' ' * (j - i))
            i = j
        elif text.startswith('/*', i):
            j = text.find('*/', i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r'[^\n]', ' ', text[i:j]))
            i = j
        else:
            out.append(c)
            i += 1
    return ''.join(out)


def call_args(text, start):
    """Splits the argument list of the call whose '(' is at start; returns (args, end)."""
    depth, i, args, cur = 0, start, [], []
    while i < len(text):
        c = text[i]
        if c == '"' or c == "'":
            j = i + 1
            while j < len(text) and text[j] != c:
                j += 2 if text[j] == '\\' else 1
            cur.append(text[i:j + 1])
            i = j + 1
            continue
        if c in '([{':
            depth += 1
            if depth == 1:
                i += 1
                continue
        elif c in ')]}':
            depth -= 1
            if depth == 0:
                args.append(''.join(cur).strip())
                return args, i
        elif c == ',' and depth == 1:
            args.append(''.join(cur).strip())
            cur = []
            i += 1
            continue
        cur.append(c)
        i += 1
    return args, i


LITERAL = re.compile(r'"((?:[^"\\]|\\.)*)"')


def literal_value(arg):
    """The text of an argument made only of adjacent string literals, else None."""
    if not re.fullmatch(r'(\s*"(?:[^"\\]|\\.)*"\s*)+', arg):
        return None
    return ''.join(LITERAL.findall(arg))


def is_piece(literal):
    return literal.strip().lower() not in VALUE_LITERALS and re.search(r'[A-Za-z]', literal) is not None


MESSAGE_CALL = re.compile(r'\b(errmsg|errmsg_plural|errdetail|errdetail_log|errhint|GUC_check_errdetail|'
                          r'GUC_check_errhint|GUC_check_errmsg)\s*\(')


def line_of(text, pos):
    return text.count('\n', 0, pos) + 1


def check_messages():
    for path in sources():
        with open(path, encoding='utf-8') as f:
            text = strip_comments(f.read())
        # Variables this file assigns a piece of English to (const char *verb = x ? "..." : "...").
        fragments = set()
        for m in re.finditer(r'\b([A-Za-z_]\w*)\s*=\s*([^;]*?)\s*;', text):
            lits = LITERAL.findall(m.group(2))
            if lits and any(is_piece(l) for l in lits) and not m.group(2).lstrip().startswith(('{', '(')):
                fragments.add(m.group(1))
        for m in MESSAGE_CALL.finditer(text):
            kind = m.group(1)
            args, _ = call_args(text, m.end() - 1)
            if not args:
                continue
            line = line_of(text, m.start())
            fmt = literal_value(args[0])
            primary = kind in ('errmsg', 'errmsg_plural', 'GUC_check_errmsg')
            if fmt is None:
                if primary:
                    report(path, line, 'assembled', '%s(%s): the format must be a string literal' % (kind, args[0]))
                continue
            if re.search(r'\bnull\b', fmt):
                report(path, line, 'style', '%s("%s"): write SQL\'s NULL as "NULL"' % (kind, fmt))
            if primary:
                if fmt.strip() == '%s':
                    report(path, line, 'assembled', '%s("%%s"): a primary message is never passed through' % kind)
                for a in args[1:]:
                    lits = LITERAL.findall(a)
                    if '?' in a and any(is_piece(l) for l in lits):
                        report(path, line, 'assembled', '%s("%s"): argument %s is a piece of a sentence' % (kind, fmt, a))
                    elif re.fullmatch(r'[A-Za-z_]\w*', a) and a in fragments:
                        report(path, line, 'assembled', '%s("%s"): argument %s holds a piece of a sentence' % (kind, fmt, a))
                if re.match(r'[A-Z][a-z]', fmt):
                    report(path, line, 'style', '%s("%s"): a primary message starts lower case' % (kind, fmt))
                if fmt.rstrip().endswith('.'):
                    report(path, line, 'style', '%s("%s"): a primary message has no trailing period' % (kind, fmt))
                if '; ' in fmt:
                    report(path, line, 'style', '%s("%s"): a primary message is one clause' % (kind, fmt))
                low = fmt.lower()
                if re.search(r'\bcannot (%s)\b' % '|'.join(ATTEMPT_VERBS), low) or \
                        ('cannot' in low.split() and re.search(r'(: %s|%m)\s*$', fmt)):
                    report(path, line, 'cannot', '%s("%s"): a failed attempt says "could not"' % (kind, fmt))
            else:
                if fmt.strip() == '%s':
                    continue
                first = fmt.lstrip().split(' ')[0] if fmt.strip() else ''
                starts_ok = bool(re.match(r'[A-Z%\\"]', fmt.lstrip())) or bool(re.search(r'[._]|\(\)', first))
                if not starts_ok:
                    report(path, line, 'style', '%s("%s"): a full sentence starts with a capital letter' % (kind, fmt))
                if not fmt.rstrip().endswith('.'):
                    report(path, line, 'style', '%s("%s"): a full sentence ends with a period' % (kind, fmt))


# ---- SQL objects and the regress schedule ------------------------------------------------------

def install_sql_files():
    full = os.path.join(ROOT, 'extension')
    for name in sorted(os.listdir(full)):
        if name.endswith('.sql'):
            yield os.path.join(full, name)


def check_sql_parts():
    """Every extension/*.sql is assembled into the install script (the Makefile's SQL_PARTS)."""
    with open(os.path.join(ROOT, 'Makefile'), encoding='utf-8') as f:
        m = re.search(r'^SQL_PARTS\s*=\s*\$\(addprefix extension/,([^)]*)\)', f.read(), re.M)
    listed = m.group(1).split() if m else []
    for path in install_sql_files():
        if os.path.basename(path) not in listed:
            report(path, 1, 'schedule', 'extension/%s is not in the Makefile\'s SQL_PARTS' % os.path.basename(path))


def check_sql_names():
    create = re.compile(r"CREATE\s+(?:OR\s+REPLACE\s+)?FUNCTION\s+poolguard\.(\w+)\s*\(([^;]*?)"
                        r"AS\s+'MODULE_PATHNAME'\s*,\s*'(\w+)'", re.S | re.I)
    for path in install_sql_files():
        with open(path, encoding='utf-8') as f:
            text = f.read()
        for m in create.finditer(text):
            if not re.fullmatch(r'poolguard_%s(_\d+_\d+)?' % re.escape(m.group(1)), m.group(3)):
                report(path, line_of(text, m.start()), 'sqlnames',
                       'poolguard.%s() is implemented by C function %s, not poolguard_%s'
                       % (m.group(1), m.group(3), m.group(1)))


def check_sql_homes():
    """Every C function extension/F.sql binds (AS 'MODULE_PATHNAME', 'poolguard_X') is defined
    under src/F/ — base.sql's in the module, src/pg_poolguard.cpp — so that a feature's SQL, C
    and tests share its name."""
    defined = {}
    define = re.compile(r'\b(?:POOLGUARD_FUNCTION|PG_FUNCTION_INFO_V1|POOLGUARD_LEGACY_ENTRY)\s*\(\s*(\w+)')
    for path in sources():
        if path.endswith('.cpp'):
            with open(path, encoding='utf-8') as f:
                for m in define.finditer(strip_comments(f.read())):
                    defined.setdefault(m.group(1), []).append(rel(path))
    bind = re.compile(r"AS\s+'MODULE_PATHNAME'\s*,\s*'(\w+)'", re.I)
    for path in install_sql_files():
        fragment = os.path.basename(path)[:-len('.sql')]
        home = 'src/pg_poolguard.cpp' if fragment == 'base' else 'src/%s/' % fragment
        with open(path, encoding='utf-8') as f:
            text = f.read()
        for m in bind.finditer(text):
            where = defined.get(m.group(1), [])
            if not any(w == home or w.startswith(home) for w in where):
                report(path, line_of(text, m.start()), 'sqlhome',
                       '%s is defined in %s, not under %s: name the fragment after the folder of its C'
                       % (m.group(1), ', '.join(where) or 'no source', home))


def check_schedule():
    schedule = os.path.join(ROOT, 'test', 'sql', 'schedule')
    tests = sorted(f[:-4] for f in os.listdir(os.path.join(ROOT, 'test', 'sql')) if f.endswith('.sql'))
    if not os.path.isfile(schedule):
        report(schedule, 1, 'schedule', 'test/sql/schedule is missing')
        return
    listed = []
    with open(schedule, encoding='utf-8') as f:
        for n, line in enumerate(f, 1):
            line = line.split('#', 1)[0].strip()
            if not line:
                continue
            if not line.startswith('test:'):
                report(schedule, n, 'schedule', 'expected "test: NAME ...": %s' % line)
                continue
            for name in line[5:].split():
                if name in listed:
                    report(schedule, n, 'schedule', 'test %s is listed twice' % name)
                if name not in tests:
                    report(schedule, n, 'schedule', 'test %s has no test/sql/%s.sql' % (name, name))
                listed.append(name)
    for name in tests:
        if name not in listed:
            report(schedule, 1, 'schedule', 'test/sql/%s.sql is not in test/sql/schedule' % name)


ONE_PLACE = [
    (r'\b(?:GetNamedLWLockTranche|shmem_register_lwlocks|RequestNamedLWLockTranche)\s*\(\s*"', (),
     'a tranche name is one named constant (constexpr const char *X_tranche) in the file that owns the lock'),
    (r'\bPG_TRY\s*\(|\bCopyErrorData\s*\(', ('src/pg/guard.h',), 'the error recovery is run_catching_errors() in pg/guard.h'),
    (r'\bpgstat_fetch_stat_local_beentry\s*\(', ('src/enforce/sessions.cpp', 'src/pg/postgres_headers.h'),
     'backends are read through backend_status_snapshot() (enforce/sessions.cpp)'),
    (r'\bsuperuser_arg\s*\(', ('src/enforce/sessions.cpp', 'src/enforce/actions.cpp'),
     'exemptions are decided by session_exempt() (enforce/sessions.cpp)'),
]


def check_one_place():
    for path in sources():
        with open(path, encoding='utf-8') as f:
            text = strip_comments(f.read())
        for pattern, allowed, why in ONE_PLACE:
            if rel(path) in allowed:
                continue
            for m in re.finditer(pattern, text):
                report(path, line_of(text, m.start()), 'oneplace', '%s: %s' % (m.group(0).rstrip('( '), why))


# ---- seams: a folder's private headers stay in the folder ---------------------------------------
# The #include rule above keeps a folder's private headers (every header but <feature>/<feature>.h)
# out of other folders; this keeps what they declare out too, so that a public header cannot
# re-export it and no file can redeclare it (e.g. invalidation_shared, PublisherSlot).
DECLARED = re.compile(r'^(?:struct|class)\s+(\w+)\s*$|^extern\s+[\w\s\*:<>]+?\b(\w+)\s*(?:\[[^\]]*\])?;'
                      r'|^[\w:<>\*\s]+?\b(\w+)\s*\(', re.M)


def private_names():
    """{name: folder} of what the private headers of feature folders declare."""
    names = {}
    for path in sources():
        r = rel(path).split('/')
        if not path.endswith('.h') or len(r) != 3 or r[1] in ('pg', 'core') or r[1] not in LAYERS:
            continue
        if r[2] == r[1] + '.h':
            continue
        with open(path, encoding='utf-8') as f:
            text = strip_comments(f.read())
        for m in DECLARED.finditer(text):
            name = next(g for g in m.groups() if g)
            if name not in ('if', 'while', 'for', 'switch', 'return', 'sizeof', 'defined', 'PGDLLEXPORT'):
                names[name] = r[1]
    # A name the folder's public header also declares is public.
    for name, folder in list(names.items()):
        public = os.path.join(SRC, folder, folder + '.h')
        with open(public, encoding='utf-8') as f:
            if re.search(r'\b%s\b' % re.escape(name), strip_comments(f.read())):
                del names[name]
    return names


def check_private_names():
    names = private_names()
    if not names:
        return
    pattern = re.compile(r'\b(%s)\b' % '|'.join(sorted(map(re.escape, names))))
    for path in sources():
        r = rel(path).split('/')
        folder = r[1] if len(r) == 3 else None
        with open(path, encoding='utf-8') as f:
            text = strip_comments(f.read())
        for m in pattern.finditer(text):
            if names[m.group(1)] != folder:
                report(path, line_of(text, m.start()), 'seams', '%s is private to src/%s/ (use its public header %s/%s.h)'
                       % (m.group(1), names[m.group(1)], names[m.group(1)], names[m.group(1)]))


def main():
    check_includes()
    check_one_place()
    check_messages()
    check_sql_names()
    check_sql_homes()
    check_sql_parts()
    check_schedule()
    check_private_names()
    for path, line, rule, text in problems:
        print('%s:%d: %s: %s' % (path, line, rule, text))
    if problems:
        print('lint: %d problem(s) (rules: scripts/lint.py)' % len(problems))
        return 1
    print('lint: ok')
    return 0


if __name__ == '__main__':
    sys.exit(main())
