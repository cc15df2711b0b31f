#!/usr/bin/env python3
"""validate_meta.py META.json — checks a distribution's META.json against the PGXN Meta Spec
v1.0.0 (https://pgxn.org/spec/): required keys, types, value formats, no unknown keys.

Python standard library only.  Exits 0 when valid; otherwise prints one line per problem (with
its JSON path) and exits 1.  The rules follow the spec's "Structure" and "Data types" sections,
as PGXN::Meta::Validator enforces them.
"""
import json
import re
import sys

# SemVer 1.0.0 as PGXN uses it: MAJOR.MINOR.PATCH with an optional pre-release tag.
SEMVER = re.compile(r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-?[a-zA-Z][0-9a-zA-Z-]*)?$")
# A version range: "0", a version, or comma-separated comparisons ("> 1.2.0, < 2.0.0").
RANGE_PART = re.compile(r"^(?:(?:==|!=|>=|<=|>|<)\s*)?(?:0|" + SEMVER.pattern[1:-1] + r")$")
# Terms (distribution and extension names, prerequisite names): 2+ characters, no whitespace,
# no control characters, no "/", "\\" or ":".
TERM = re.compile(r"^[^\s/\\:\x00-\x1f\x7f]{2,}$")
# Tags: 1-255 characters, no "/", "\\" or control characters.
TAG = re.compile(r"^[^/\\\x00-\x1f\x7f]{1,255}$")
URI = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:[^\s]+$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")

LICENSES = {
    "agpl_3", "apache_1_1", "apache_2_0", "artistic_1", "artistic_2", "bsd", "freebsd",
    "gfdl_1_2", "gfdl_1_3", "gpl_1", "gpl_2", "gpl_3", "lgpl_2_1", "lgpl_3_0", "mit",
    "mozilla_1_0", "mozilla_1_1", "openssl", "perl_5", "postgresql", "qpl_1_0", "ssleay", "sun",
    "zlib", "open_source", "restricted", "unrestricted", "unknown",
}
PHASES = {"configure", "build", "test", "runtime", "develop"}
RELATIONS = {"requires", "recommends", "suggests", "conflicts"}
RELEASE_STATUS = {"stable", "testing", "unstable"}

TOP_REQUIRED = {"name", "abstract", "maintainer", "version", "license", "provides", "meta-spec"}
TOP_OPTIONAL = {"description", "generated_by", "tags", "no_index", "prereqs", "release_status",
                "resources"}

problems = []


def bad(path, message):
    problems.append(f"{path}: {message}")


def custom(key):
    return key.startswith("x_") or key.startswith("X_")


def check_keys(obj, path, required, optional):
    for key in sorted(required - obj.keys()):
        bad(path, f'required key "{key}" is missing')
    for key in sorted(obj.keys() - required - optional):
        if not custom(key):
            bad(f"{path}.{key}", "unknown key (custom keys start with x_)")


def is_str(v, path, what="a string"):
    if not isinstance(v, str) or v == "":
        bad(path, f"must be {what}")
        return False
    return True


def check_term(v, path):
    if is_str(v, path, "a term (a non-empty string)") and not TERM.match(v):
        bad(path, f'"{v}" is not a valid term (2+ characters, no whitespace, "/", "\\" or ":")')


def check_version(v, path):
    if is_str(v, path, "a semantic version string") and not SEMVER.match(v):
        bad(path, f'"{v}" is not a semantic version (MAJOR.MINOR.PATCH)')


def check_range(v, path):
    if isinstance(v, int) and v == 0:
        return
    if not is_str(v, path, "a version range string"):
        return
    for part in v.split(","):
        if not RANGE_PART.match(part.strip()):
            bad(path, f'"{v}" is not a version range')
            return


def check_uri(v, path):
    if is_str(v, path, "a URI") and not URI.match(v):
        bad(path, f'"{v}" is not a URI')


def check_object(v, path):
    if not isinstance(v, dict):
        bad(path, "must be an object")
        return False
    return True


def check_license(v, path):
    if isinstance(v, str):
        if v not in LICENSES:
            bad(path, f'"{v}" is not a license the spec names')
    elif isinstance(v, list):
        if not v:
            bad(path, "must not be empty")
        for i, item in enumerate(v):
            if not isinstance(item, str) or item not in LICENSES:
                bad(f"{path}[{i}]", f'"{item}" is not a license the spec names')
    elif isinstance(v, dict):
        if not v:
            bad(path, "must not be empty")
        for name, url in v.items():
            is_str(name, f"{path} key", "a license name")
            check_uri(url, f"{path}.{name}")
    else:
        bad(path, "must be a string, an array of strings or an object of name: URL")


def check_maintainer(v, path):
    if isinstance(v, str):
        is_str(v, path)
    elif isinstance(v, list) and v:
        for i, item in enumerate(v):
            is_str(item, f"{path}[{i}]")
    else:
        bad(path, "must be a string or a non-empty array of strings")


def check_provides(v, path):
    if not check_object(v, path):
        return
    if not v:
        bad(path, "must name at least one extension")
    for name, ext in v.items():
        p = f"{path}.{name}"
        check_term(name, f"{path} key")
        if not check_object(ext, p):
            continue
        check_keys(ext, p, {"file", "version"}, {"abstract", "docfile"})
        if "file" in ext:
            is_str(ext["file"], f"{p}.file", "a file path")
        if "version" in ext:
            check_version(ext["version"], f"{p}.version")
        for key in ("abstract", "docfile"):
            if key in ext:
                is_str(ext[key], f"{p}.{key}")


def check_meta_spec(v, path):
    if not check_object(v, path):
        return
    check_keys(v, path, {"version"}, {"url"})
    if v.get("version") != "1.0.0":
        bad(f"{path}.version", 'must be "1.0.0" (this validator knows that version of the spec)')
    if "url" in v:
        check_uri(v["url"], f"{path}.url")


def check_prereqs(v, path):
    if not check_object(v, path):
        return
    for phase, relations in v.items():
        p = f"{path}.{phase}"
        if phase not in PHASES and not custom(phase):
            bad(p, f"unknown phase (one of {', '.join(sorted(PHASES))})")
            continue
        if not check_object(relations, p):
            continue
        for relation, prereqs in relations.items():
            q = f"{p}.{relation}"
            if relation not in RELATIONS and not custom(relation):
                bad(q, f"unknown relation (one of {', '.join(sorted(RELATIONS))})")
                continue
            if not check_object(prereqs, q):
                continue
            for name, version in prereqs.items():
                check_term(name, f"{q} key")
                check_range(version, f"{q}.{name}")


def check_resources(v, path):
    if not check_object(v, path):
        return
    check_keys(v, path, set(), {"homepage", "bugtracker", "repository"})
    if "homepage" in v:
        check_uri(v["homepage"], f"{path}.homepage")
    if "bugtracker" in v and check_object(v["bugtracker"], f"{path}.bugtracker"):
        bt = v["bugtracker"]
        check_keys(bt, f"{path}.bugtracker", set(), {"web", "mailto"})
        if "web" in bt:
            check_uri(bt["web"], f"{path}.bugtracker.web")
        if "mailto" in bt and is_str(bt["mailto"], f"{path}.bugtracker.mailto") \
                and not EMAIL.match(bt["mailto"]):
            bad(f"{path}.bugtracker.mailto", "is not an email address")
    if "repository" in v and check_object(v["repository"], f"{path}.repository"):
        repo = v["repository"]
        check_keys(repo, f"{path}.repository", set(), {"url", "web", "type"})
        for key in ("url", "web"):
            if key in repo:
                check_uri(repo[key], f"{path}.repository.{key}")
        if "type" in repo and is_str(repo["type"], f"{path}.repository.type") \
                and not re.match(r"^[a-z]+$", repo["type"]):
            bad(f"{path}.repository.type", "must be a lower-case word (git, svn, ...)")


def check_no_index(v, path):
    if not check_object(v, path):
        return
    check_keys(v, path, set(), {"file", "directory"})
    for key in ("file", "directory"):
        if key in v:
            items = v[key] if isinstance(v[key], list) else [v[key]]
            for i, item in enumerate(items):
                is_str(item, f"{path}.{key}[{i}]", "a path")


def validate(meta):
    if not check_object(meta, "$"):
        return
    check_keys(meta, "$", TOP_REQUIRED, TOP_OPTIONAL)
    if "name" in meta:
        check_term(meta["name"], "$.name")
    for key in ("abstract", "description", "generated_by"):
        if key in meta:
            is_str(meta[key], f"$.{key}")
    if "version" in meta:
        check_version(meta["version"], "$.version")
    if "maintainer" in meta:
        check_maintainer(meta["maintainer"], "$.maintainer")
    if "license" in meta:
        check_license(meta["license"], "$.license")
    if "provides" in meta:
        check_provides(meta["provides"], "$.provides")
    if "meta-spec" in meta:
        check_meta_spec(meta["meta-spec"], "$.meta-spec")
    if "prereqs" in meta:
        check_prereqs(meta["prereqs"], "$.prereqs")
    if "release_status" in meta and meta["release_status"] not in RELEASE_STATUS:
        bad("$.release_status", f"must be one of {', '.join(sorted(RELEASE_STATUS))}")
    if "resources" in meta:
        check_resources(meta["resources"], "$.resources")
    if "no_index" in meta:
        check_no_index(meta["no_index"], "$.no_index")
    if "tags" in meta:
        if not isinstance(meta["tags"], list) or not meta["tags"]:
            bad("$.tags", "must be a non-empty array of tags")
        else:
            for i, tag in enumerate(meta["tags"]):
                if not isinstance(tag, str) or not TAG.match(tag):
                    bad(f"$.tags[{i}]", "must be a tag (1-255 characters, no \"/\", \"\\\" or control characters)")


def main(argv):
    if len(argv) != 2:
        print("usage: validate_meta.py META.json", file=sys.stderr)
        return 2
    try:
        with open(argv[1], encoding="utf-8") as f:
            meta = json.load(f)
    except (OSError, ValueError) as e:
        print(f"{argv[1]}: could not read JSON: {e}", file=sys.stderr)
        return 1
    validate(meta)
    for p in problems:
        print(f"{argv[1]}: {p}", file=sys.stderr)
    if problems:
        return 1
    print(f"{argv[1]}: valid PGXN Meta Spec 1.0.0 ({meta['name']} {meta['version']})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
