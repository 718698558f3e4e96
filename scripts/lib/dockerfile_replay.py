"""Replay a Dockerfile's stages on this machine, without a container engine.

Used by scripts/check-image.sh. The Dockerfile is read with BuildKit's own
parser (the `dockerfile` package) and its instructions are carried out in
order, each stage in a scratch root of its own:

- the build context is copied first, with .dockerignore applied by Docker's
  rules (see `DockerIgnore`);
- FROM an earlier stage starts from a copy of that stage's root, its ENV and
  WORKDIR; FROM an image starts empty. A RUN is carried out by this machine's
  shell and tools, so it is only allowed in a stage built on the Rust image
  (this machine stands in for it: Debian 12 with the same toolchain);
- container paths the Dockerfile itself makes (its WORKDIR and COPY
  destinations and the sources of COPY --from) are rewritten into the stage's
  root, in COPY, WORKDIR and in the text of RUN; any other absolute path, such
  as /usr/local, is this machine's;
- ARG, ENV and ${VAR} substitution follow Docker; RUN sees the ARGs and ENVs
  in scope as environment variables;
- metadata (USER, EXPOSE, ENTRYPOINT, CMD, LABEL, ...) changes nothing on
  disk. The final ENTRYPOINT must name an executable file in the last root.

Only the stages the target stage needs (through FROM and COPY --from) are run,
as BuildKit does. One addition stands in for Docker's layer cache: a RUN that
runs cargo in a WORKDIR gets `target` there as a symlink to --cargo-target
(unless the stage already has one), so that a second replay builds
incrementally.

Like Docker's layer cache, a replay whose inputs are byte for byte those of
the last successful one with the same build arguments (the Dockerfile, the
context after .dockerignore, this file, the build arguments, rustc's and
cargo-chef's versions) is not carried out again: its entrypoint is kept from
that run. --force replays anyway.

Exit status: 0 when every step succeeded, 1 when a step failed, 2 on a
Dockerfile this replay cannot carry out (such as ADD from a URL).
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field

import dockerfile


# This machine's settings that the image does not have and that would change
# where a RUN writes.
HOST_ONLY_ENV = {"CARGO_TARGET_DIR", "CARGO_BUILD_TARGET_DIR"}


class ReplayError(Exception):
    """A step failed; the message says which and why."""


class Unsupported(Exception):
    """The Dockerfile uses something this replay cannot carry out."""


# ---------------------------------------------------------------- .dockerignore


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """Docker's pattern syntax (Go's filepath.Match plus `**`) as a regex."""
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            if pattern.startswith("**", i):
                i += 2
                if pattern.startswith("/", i):
                    # `**/` matches zero or more whole directories.
                    out.append("(?:.*/)?")
                    i += 1
                else:
                    out.append(".*")
                continue
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                raise Unsupported(f".dockerignore: unterminated [ in {pattern!r}")
            body = pattern[i + 1 : end]
            if body.startswith("^"):
                body = "!" + body[1:]
            if body.startswith("!"):
                body = "^" + re.escape(body[1:]).replace("\\-", "-")
            else:
                body = re.escape(body).replace("\\-", "-")
            out.append(f"[{body}]")
            i = end
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z")


class DockerIgnore:
    """The patterns of a .dockerignore file, matched as Docker matches them.

    Each line is a pattern, cleaned like a path (leading `/` and `./` dropped);
    `#` starts a comment line; `!` makes an exception. A path is excluded when
    the last pattern that matches it, or any of its parent directories, is not
    an exception.
    """

    def __init__(self, text: str) -> None:
        self.rules: list[tuple[bool, re.Pattern[str]]] = []
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            exception = line.startswith("!")
            if exception:
                line = line[1:].strip()
            line = os.path.normpath(line).lstrip("/")
            if line in ("", "."):
                continue
            self.rules.append((exception, _pattern_regex(line)))

    def excluded(self, rel: str) -> bool:
        parts = rel.split("/")
        prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        result = False
        for exception, regex in self.rules:
            if any(regex.match(p) for p in prefixes):
                result = not exception
        return result


# (patterns, path, excluded?): Docker's documented rules, and this repository's
# own patterns on the paths they are there for. `--test-dockerignore` runs them.
IGNORE_CASES = [
    ("*.md", "README.md", True),
    ("*.md", "crates/sync-pubsub/README.md", False),  # `*` stays in one directory
    ("**/*.md", "crates/sync-pubsub/README.md", True),
    ("**/*.md", "README.md", True),  # `**` may match no directory at all
    ("target\n**/target", "target/release/sync-function", True),
    ("target\n**/target", "crates/sync-core/target/x", True),
    ("target", "crates/sync-core/target/x", False),
    ("/deploy", "deploy/up.sh", True),
    ("./scripts/", "scripts/lib/tools.sh", True),
    ("*/temp*", "somedir/temporary.txt", True),
    ("*/temp*", "temporary.txt", False),
    ("temp?", "tempa", True),
    ("temp?", "tempab", False),
    ("*.md\n!README.md", "README.md", False),
    ("*.md\n!README*.md\nREADME-secret.md", "README-secret.md", True),
    ("*.md\nREADME-secret.md\n!README*.md", "README-secret.md", False),
    ("# comment\n.env.*", ".env.local", True),
    (".env.*", ".env", False),
    ("**/*~", "crates/a/b.rs~", True),
    ("[a-c]at", "bat", True),
    ("[!a-c]at", "bat", False),
]


def test_dockerignore() -> int:
    failures = 0
    for patterns, path, want in IGNORE_CASES:
        got = DockerIgnore(patterns).excluded(path)
        if got != want:
            failures += 1
            print(f"dockerignore: {patterns!r} on {path!r}: excluded={got}, expected {want}")
    print(f"dockerignore rules: {len(IGNORE_CASES) - failures} of {len(IGNORE_CASES)} cases as Docker documents")
    return 1 if failures else 0


def copy_context(src: str, dest: str) -> int:
    """Copy the build context `src` to `dest`, .dockerignore applied.

    Modification times are kept, as Docker keeps them. Returns the number of
    files copied.
    """
    ignore_path = os.path.join(src, ".dockerignore")
    ignore = DockerIgnore(open(ignore_path).read() if os.path.exists(ignore_path) else "")
    if os.path.exists(dest):
        shutil.rmtree(dest)
    os.makedirs(dest)
    count = 0
    for dirpath, dirnames, filenames in os.walk(src):
        rel_dir = os.path.relpath(dirpath, src)
        rel_dir = "" if rel_dir == "." else rel_dir + "/"
        # Walk every directory: an exception may re-include something below
        # an excluded one; only what is not excluded is copied.
        dirnames.sort()
        for name in sorted(filenames) + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            rel = rel_dir + name
            if ignore.excluded(rel):
                continue
            target = os.path.join(dest, rel)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copy2(os.path.join(dirpath, name), target, follow_symlinks=False)
            count += 1
        for name in dirnames:
            rel = rel_dir + name
            if not ignore.excluded(rel) and not os.path.islink(os.path.join(dirpath, name)):
                os.makedirs(os.path.join(dest, rel), exist_ok=True)
                shutil.copystat(os.path.join(dirpath, name), os.path.join(dest, rel))
    return count


# ---------------------------------------------------------------- substitution

_VAR = re.compile(r"\\\$|\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-+])?(?P<word>[^}]*)\}|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))")


def substitute(text: str, env: dict[str, str]) -> str:
    """Docker's ${VAR}, $VAR, ${VAR:-word} and ${VAR:+word} substitution."""

    def one(m: re.Match[str]) -> str:
        if m.group(0) == "\\$":
            return "$"
        name = m.group("braced") or m.group("plain")
        value = env.get(name)
        op = m.group("op")
        if op in (":-", "-"):
            unset = value is None or (op == ":-" and value == "")
            return substitute(m.group("word"), env) if unset else value
        if op in (":+", "+"):
            set_ = value is not None and (op == "+" or value != "")
            return substitute(m.group("word"), env) if set_ else ""
        return value or ""

    return _VAR.sub(one, text)


# ---------------------------------------------------------------- stages


@dataclass
class Stage:
    index: int
    name: str | None
    base: str  # unexpanded FROM argument
    commands: list = field(default_factory=list)
    line: int = 0

    @property
    def label(self) -> str:
        return self.name or str(self.index)


@dataclass
class State:
    root: str
    host: bool  # built on the Rust image, so this machine can run its RUNs
    image: str
    workdir: str = "/"
    env: dict[str, str] = field(default_factory=dict)
    args: dict[str, str] = field(default_factory=dict)
    shell: list[str] = field(default_factory=lambda: ["/bin/sh", "-c"])
    entrypoint: list[str] | None = None


def split_stages(commands) -> tuple[list, list[Stage]]:
    preamble, stages = [], []
    for cmd in commands:
        if cmd.cmd.upper() == "FROM":
            value = list(cmd.value)
            name = value[2].lower() if len(value) >= 3 and value[1].upper() == "AS" else None
            stages.append(Stage(index=len(stages), name=name, base=value[0], line=cmd.start_line))
        elif stages:
            stages[-1].commands.append(cmd)
        else:
            preamble.append(cmd)
    return preamble, stages


def flag(cmd, name: str) -> str | None:
    for f in cmd.flags:
        if f.startswith(f"--{name}="):
            return f.split("=", 1)[1]
    return None


class Replay:
    def __init__(self, dockerfile_path: str, context: str, work: str, cargo_target: str,
                 build_args: dict[str, str], target: str | None, host_images: list[str]) -> None:
        self.path = dockerfile_path
        self.context = context
        self.work = work
        self.cargo_target = cargo_target
        self.build_args = build_args
        self.host_images = host_images
        self.commands = dockerfile.parse_file(dockerfile_path)
        self.preamble, self.stages = split_stages(self.commands)
        if not self.stages:
            raise Unsupported(f"{dockerfile_path}: no FROM")
        self.global_args: dict[str, str] = {}
        for cmd in self.preamble:
            if cmd.cmd.upper() == "ARG":
                for decl in cmd.value:
                    name, _, default = decl.partition("=")
                    self.global_args[name] = build_args.get(name, substitute(default, self.global_args))
        self.target = self.find_stage(target) if target else self.stages[-1]
        self.owned = self.owned_top_dirs()
        self.states: dict[int, State] = {}

    def where(self, cmd) -> str:
        return f"{os.path.basename(self.path)}:{cmd.start_line}"

    def find_stage(self, ref: str) -> Stage:
        for s in self.stages:
            if s.name == ref.lower() or str(s.index) == ref:
                return s
        raise Unsupported(f"no stage {ref!r} in {self.path}")

    def stage_ref(self, ref: str, before: int) -> Stage | None:
        for s in self.stages[:before]:
            if s.name == ref.lower() or str(s.index) == ref:
                return s
        return None

    def owned_top_dirs(self) -> set[str]:
        """Top-level directories of the container paths the Dockerfile makes."""
        owned = set()
        env = dict(self.global_args)
        for stage in self.stages:
            for cmd in stage.commands:
                kind = cmd.cmd.upper()
                paths = []
                if kind == "WORKDIR":
                    paths = [cmd.value[0]]
                elif kind in ("COPY", "ADD"):
                    paths = [cmd.value[-1]]
                    if flag(cmd, "from"):
                        paths += list(cmd.value[:-1])
                for p in paths:
                    p = substitute(p, env)
                    if p.startswith("/") and p.strip("/"):
                        owned.add(p.strip("/").split("/")[0])
        return owned

    # -- paths

    def container_abs(self, state: State, path: str) -> str:
        return os.path.normpath(path if path.startswith("/") else os.path.join(state.workdir, path))

    def on_disk(self, state: State, path: str) -> str:
        """Where container path `path` of this stage lives on this machine."""
        p = self.container_abs(state, path)
        return os.path.normpath(state.root + p) if p != "/" else state.root

    def rewrite_run(self, state: State, text: str) -> str:
        if not self.owned:
            return text
        names = "|".join(re.escape(n) for n in sorted(self.owned))
        pattern = re.compile(r"(?<![\w./${}-])/(?:" + names + r")(?=/|[\s'\";&|)]|$)")
        return pattern.sub(lambda m: state.root + m.group(0), text)

    # -- the run

    def needed(self) -> list[Stage]:
        need: set[int] = set()

        def visit(stage: Stage) -> None:
            if stage.index in need:
                return
            need.add(stage.index)
            base = self.stage_ref(substitute(stage.base, self.global_args), stage.index)
            if base:
                visit(base)
            for cmd in stage.commands:
                src = flag(cmd, "from") if cmd.cmd.upper() in ("COPY", "ADD") else None
                if src:
                    dep = self.stage_ref(src, stage.index)
                    if dep is None:
                        raise Unsupported(f"{self.where(cmd)}: COPY --from={src} (an image) cannot be replayed")
                    visit(dep)

        visit(self.target)
        return [s for s in self.stages if s.index in need]

    def run(self) -> State:
        for stage in self.needed():
            self.run_stage(stage)
        return self.states[self.target.index]

    def log(self, stage: Stage, text: str) -> None:
        print(f"==> [{stage.label}] {text}", flush=True)

    def run_stage(self, stage: Stage) -> None:
        root = os.path.join(self.work, "stages", f"{stage.index}-{stage.label}")
        if os.path.exists(root):
            shutil.rmtree(root)
        base_ref = substitute(stage.base, self.global_args)
        self.log(stage, f"FROM {base_ref}" + (f" AS {stage.name}" if stage.name else ""))
        base = self.stage_ref(base_ref, stage.index)
        if base:
            parent = self.states[base.index]
            shutil.copytree(parent.root, root, symlinks=True)
            state = State(root=root, host=parent.host, image=parent.image, workdir=parent.workdir,
                          env=dict(parent.env), shell=list(parent.shell), entrypoint=parent.entrypoint)
        else:
            os.makedirs(root)
            host = any(re.fullmatch(p, base_ref) for p in self.host_images)
            state = State(root=root, host=host, image=base_ref)
        self.states[stage.index] = state
        for cmd in stage.commands:
            self.step(stage, state, cmd)

    def scope(self, state: State) -> dict[str, str]:
        return {**state.args, **state.env}

    def step(self, stage: Stage, state: State, cmd) -> None:
        kind = cmd.cmd.upper()
        where = self.where(cmd)
        if kind == "ARG":
            for decl in cmd.value:
                name, eq, default = decl.partition("=")
                if name in self.build_args:
                    value = self.build_args[name]
                elif name in self.global_args and not eq:
                    value = self.global_args[name]
                elif eq:
                    value = substitute(default, self.scope(state))
                else:
                    continue  # declared without a value: unset, as in Docker
                state.args[name] = value
            self.log(stage, f"ARG {' '.join(cmd.value)}")
        elif kind == "ENV":
            values = list(cmd.value)
            for name, value in zip(values[::2], values[1::2]):
                state.env[name] = substitute(value, self.scope(state))
            self.log(stage, cmd.original)
        elif kind == "WORKDIR":
            state.workdir = self.container_abs(state, substitute(cmd.value[0], self.scope(state)))
            os.makedirs(self.on_disk(state, state.workdir), exist_ok=True)
            self.log(stage, f"WORKDIR {state.workdir}")
        elif kind == "SHELL":
            state.shell = list(cmd.value)
        elif kind in ("COPY", "ADD"):
            self.copy(stage, state, cmd)
        elif kind == "RUN":
            self.run_step(stage, state, cmd)
        elif kind == "ENTRYPOINT":
            state.entrypoint = list(cmd.value) if cmd.json else list(state.shell) + [cmd.value[0]]
            self.log(stage, cmd.original)
        elif kind in ("USER", "EXPOSE", "CMD", "LABEL", "HEALTHCHECK", "STOPSIGNAL", "VOLUME", "MAINTAINER"):
            self.log(stage, f"{cmd.original} (metadata only)")
        else:
            raise Unsupported(f"{where}: {kind} is not replayed")

    def copy(self, stage: Stage, state: State, cmd) -> None:
        where = self.where(cmd)
        scope = self.scope(state)
        args = [substitute(v, scope) for v in cmd.value]
        sources, dest = args[:-1], args[-1]
        from_ref = flag(cmd, "from")
        if from_ref:
            src_stage = self.stage_ref(substitute(from_ref, scope), stage.index)
            src_state = self.states[src_stage.index]
            base_dir = src_state.root
            resolve = lambda s: os.path.normpath(base_dir + self.container_abs(src_state, s))  # noqa: E731
        else:
            base_dir = os.path.join(self.work, "context")
            resolve = lambda s: os.path.normpath(os.path.join(base_dir, s.lstrip("/")))  # noqa: E731
        if cmd.cmd.upper() == "ADD" and any(re.match(r"^[a-z]+://", s) for s in sources):
            raise Unsupported(f"{where}: ADD from a URL cannot be replayed")
        matched = []
        for s in sources:
            hits = sorted(glob.glob(resolve(s))) if glob.has_magic(s) else [resolve(s)]
            hits = [h for h in hits if os.path.lexists(h)]
            if not hits:
                raise ReplayError(f"{where}: COPY source {s!r} not found" + (
                    f" in stage {from_ref}" if from_ref else " in the build context (.dockerignore applied)"))
            matched += hits
        dest_disk = self.on_disk(state, dest)
        into_dir = dest.endswith("/") or len(matched) > 1 or os.path.isdir(dest_disk) or dest in (".", "./")
        for src in matched:
            if os.path.isdir(src) and not os.path.islink(src):
                shutil.copytree(src, dest_disk, symlinks=True, dirs_exist_ok=True)
            else:
                target = os.path.join(dest_disk, os.path.basename(src)) if into_dir else dest_disk
                os.makedirs(os.path.dirname(target), exist_ok=True)
                shutil.copy2(src, target, follow_symlinks=False)
        self.log(stage, cmd.original)

    def run_step(self, stage: Stage, state: State, cmd) -> None:
        where = self.where(cmd)
        if not state.host:
            raise Unsupported(f"{where}: RUN in a stage built on {state.image} cannot be replayed here")
        cwd = self.on_disk(state, state.workdir)
        os.makedirs(cwd, exist_ok=True)
        # cargo's target directory is `target` beside the workspace's Cargo.toml,
        # which `cargo chef cook` writes only once it runs: link it up front.
        command_text = " ".join(cmd.value)
        if (re.search(r"\bcargo\b", command_text) and state.workdir != "/"
                and not os.path.lexists(os.path.join(cwd, "target"))):
            os.makedirs(self.cargo_target, exist_ok=True)
            os.symlink(self.cargo_target, os.path.join(cwd, "target"))
        if cmd.json:
            argv = [self.rewrite_run(state, a) for a in cmd.value]
        else:
            argv = list(state.shell) + [self.rewrite_run(state, cmd.value[0])]
        env = {k: v for k, v in os.environ.items() if k not in HOST_ONLY_ENV}
        env.update(self.scope(state))
        self.log(stage, cmd.original)
        started = time.monotonic()
        rc = subprocess.call(argv, cwd=cwd, env=env)
        elapsed = time.monotonic() - started
        if rc != 0:
            raise ReplayError(f"{where}: RUN failed with exit status {rc} after {elapsed:.0f} s "
                              f"(stage {stage.label}): {cmd.original}")
        self.log(stage, f"done in {elapsed:.0f} s")


def tree_digest(top: str, h) -> None:
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames.sort()
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, top)
            h.update(f"{rel}\0{os.lstat(path).st_mode:o}\0".encode())
            if os.path.islink(path):
                h.update(os.readlink(path).encode())
            else:
                with open(path, "rb") as f:
                    h.update(hashlib.sha256(f.read()).digest())


def inputs_key(dockerfile_path: str, context_copy: str, build_args: dict[str, str], target: str | None) -> str:
    """What a replay's result depends on, as one digest."""
    h = hashlib.sha256()
    for path in (dockerfile_path, __file__):
        with open(path, "rb") as f:
            h.update(hashlib.sha256(f.read()).digest())
    h.update(json.dumps([sorted(build_args.items()), target]).encode())
    for tool in (["rustc", "-vV"], ["cargo-chef", "--version"]):
        try:
            h.update(subprocess.run(tool, capture_output=True, check=False).stdout)
        except OSError:
            h.update(b"missing " + tool[0].encode())
    tree_digest(context_copy, h)
    return h.hexdigest()


def main(argv: list[str]) -> int:
    if argv == ["--test-dockerignore"]:
        return test_dockerignore()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dockerfile", required=True)
    parser.add_argument("--context", required=True)
    parser.add_argument("--work", required=True, help="scratch directory (emptied stage by stage)")
    parser.add_argument("--cargo-target", required=True, help="persistent cargo target directory")
    parser.add_argument("--build-arg", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--target", help="stage to build (default: the last)")
    parser.add_argument("--host-image", action="append", default=[], metavar="REGEX",
                        help="images this machine stands in for (RUN allowed on them)")
    parser.add_argument("--print-entrypoint", metavar="FILE",
                        help="write the final stage's entrypoint, as a path on this machine, to FILE")
    parser.add_argument("--force", action="store_true", help="replay even if nothing changed")
    opts = parser.parse_args(argv)
    build_args = dict(a.split("=", 1) for a in opts.build_arg)
    try:
        work = os.path.abspath(opts.work)
        os.makedirs(work, exist_ok=True)
        n = copy_context(os.path.abspath(opts.context), os.path.join(work, "context"))
        print(f"==> build context: {n} files after .dockerignore", flush=True)
        key = inputs_key(opts.dockerfile, os.path.join(work, "context"), build_args, opts.target)
        # One record per build (Dockerfile, context, arguments), so that one
        # build does not evict another's.
        stamp_id = hashlib.sha256(json.dumps([os.path.abspath(opts.dockerfile), os.path.abspath(opts.context),
                                              sorted(build_args.items()), opts.target]).encode()).hexdigest()[:16]
        stamp = os.path.join(work, "done", stamp_id)
        kept = stamp + ".entrypoint"
        if not opts.force and opts.print_entrypoint and os.path.exists(kept) and os.path.exists(stamp):
            with open(stamp) as f:
                if f.read().strip() == key:
                    print(f"==> inputs unchanged since the last successful replay (sha256 {key[:16]}): "
                          "not replayed (--force replays)", flush=True)
                    with open(opts.print_entrypoint, "w") as out:
                        out.write(kept + "\n")
                    return 0
        replay = Replay(opts.dockerfile, opts.context, work, os.path.abspath(opts.cargo_target),
                        build_args, opts.target, opts.host_image)
        state = replay.run()
        if opts.print_entrypoint:
            if not state.entrypoint:
                raise ReplayError(f"stage {replay.target.label} has no ENTRYPOINT")
            program = os.path.normpath(state.root + replay.container_abs(state, state.entrypoint[0]))
            if not (os.path.isfile(program) and os.access(program, os.X_OK)):
                raise ReplayError(f"ENTRYPOINT {state.entrypoint[0]} is not an executable file in the final stage")
            with open(opts.print_entrypoint, "w") as f:
                f.write(program + "\n")
            os.makedirs(os.path.dirname(stamp), exist_ok=True)
            shutil.copy2(program, kept)
            with open(stamp, "w") as f:
                f.write(key + "\n")
    except Unsupported as e:
        print(f"replay: unsupported: {e}", file=sys.stderr)
        return 2
    except ReplayError as e:
        print(f"replay: FAILED: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
