#!/usr/bin/env bash
# ironvault vs restic: a benchmark anyone can rerun by hand (it is NOT part of the test suite).
#
#   scripts/bench.sh                       # full run: >= 1 GiB corpus in bench-work/
#   BENCH_SIZE_MB=200 scripts/bench.sh     # quick run
#
# Environment:
#   BENCH_DIR          work dir (default: <repo>/bench-work, gitignored). Holds the corpus
#                      (kept and reused between runs), the repositories, logs and results.md.
#   BENCH_SIZE_MB      corpus size target in MiB (default 1024).
#   BENCH_DB_MB        size of the synthetic database file (default 300, scaled down below 1024).
#   BENCH_MAX_FILE_KB  largest /usr file copied into the corpus (default 512; ~80,000 files at 1 GiB).
#   BENCH_KEEP=1       keep the restored trees after verification.
#   BENCH_S3=0         skip the S3 part (scripts/bench-s3.sh: backup/restore/copy on Garage).
#   BENCH_PRUNE=0      skip forget + prune after a series of backups (scripts/bench-prune.sh).
#   BENCH_PLANS=0      skip the protection-plan overhead and drill (scripts/bench-plans.sh).
#   IRONVAULT_PASSWORD / RESTIC_PASSWORD  repository passwords (a fixed bench password if unset).
#
# What it does: installs restic, b3sum, zstd and GNU time if missing; builds ironvault
# (cargo build --release -p ironvault); assembles the corpus (copies of /usr trees + one
# page-structured database-like file made deterministically by python3); measures the
# machine limit (tar | tee >(b3sum) | zstd -3 -T0); then, for ironvault and then restic, each
# against a fresh local repository: init, full backup, no-change backup (cold cache, then
# again with a warm cache), backup after a deterministic modification, restore of the latest
# snapshot (verified against the corpus), check --read-data. Every step is timed with /usr/bin/time (wall seconds, peak RSS) after
# dropping the page cache when the kernel lets us. The modification is undone after each
# tool, so both tools see exactly the same corpus and the same change.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_DIR=${BENCH_DIR:-$REPO_ROOT/bench-work}
BENCH_SIZE_MB=${BENCH_SIZE_MB:-1024}
if [ -z "${BENCH_DB_MB:-}" ]; then
    if (( BENCH_SIZE_MB >= 1024 )); then BENCH_DB_MB=300; else BENCH_DB_MB=$(( BENCH_SIZE_MB * 300 / 1024 )); fi
fi
BENCH_MAX_FILE_KB=${BENCH_MAX_FILE_KB:-512}
BENCH_KEEP=${BENCH_KEEP:-0}
export IRONVAULT_PASSWORD=${IRONVAULT_PASSWORD:-ironvault-bench-password}
export RESTIC_PASSWORD=${RESTIC_PASSWORD:-ironvault-bench-password}
# Only the passwords above are used: no other password source, no default repository.
unset IRONVAULT_REPO IRONVAULT_PASSWORD_FILE IRONVAULT_PASSWORD_COMMAND \
      RESTIC_REPOSITORY RESTIC_REPOSITORY_FILE RESTIC_PASSWORD_FILE RESTIC_PASSWORD_COMMAND
CACHE_ROOT=${XDG_CACHE_HOME:-$HOME/.cache}/ironvault-bench
export PATH=$CACHE_ROOT/bin:$PATH
export LC_ALL=C

say() { printf '\n==> %s\n' "$*"; }
info() { printf '    %s\n' "$*"; }
die() { printf '\nerror: %s\n' "$*" >&2; exit 1; }

for v in BENCH_SIZE_MB BENCH_DB_MB BENCH_MAX_FILE_KB; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number of MiB/KiB (got '${!v}')"
done
(( BENCH_DB_MB < BENCH_SIZE_MB )) || die "BENCH_DB_MB ($BENCH_DB_MB) must be smaller than BENCH_SIZE_MB ($BENCH_SIZE_MB)"

# ---------------------------------------------------------------- 1. tools
SUDO=()
APT_UPDATED=0
apt_install() {
    command -v apt-get >/dev/null || return 1
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || { echo "not root and no sudo: cannot apt-get install $*" >&2; return 1; }
        SUDO=(sudo)
    fi
    if [ "$APT_UPDATED" = 0 ]; then
        info "apt-get update"
        "${SUDO[@]}" apt-get update -qq || true
        APT_UPDATED=1
    fi
    info "apt-get install -y $*"
    DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq "$@" >/dev/null
}

say "checking tools"
command -v python3 >/dev/null || apt_install python3 || die "python3 is needed"
command -v restic >/dev/null || apt_install restic || die "could not install restic (apt-get install -y restic)"
command -v zstd >/dev/null || apt_install zstd || die "could not install zstd"
[ -x /usr/bin/time ] || apt_install time || die "could not install GNU time (package 'time')"
[ -x /usr/bin/time ] || die "/usr/bin/time is missing"
command -v tar >/dev/null || apt_install tar || die "tar is needed"
if ! command -v b3sum >/dev/null; then
    if ! apt_install b3sum; then
        info "b3sum is not in apt: cargo install b3sum --locked --root $CACHE_ROOT"
        cargo install b3sum --locked --root "$CACHE_ROOT"
    fi
fi
command -v b3sum >/dev/null || die "b3sum is missing"
RESTIC=$(command -v restic)
RESTIC_VERSION=$("$RESTIC" version)
info "restic: $RESTIC_VERSION"
info "b3sum:  $(b3sum --version)"
info "zstd:   $(zstd --version)"
info "python: $(python3 --version 2>&1)"

# ---------------------------------------------------------------- 2. build
say "building ironvault: cargo build --release -p ironvault"
(cd "$REPO_ROOT" && cargo build --release -p ironvault)
IV=${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/ironvault
[[ $IV = /* ]] || IV=$REPO_ROOT/$IV
[ -x "$IV" ] || die "no binary at $IV after the build"
IV_VERSION="$("$IV" --version) ($(cd "$REPO_ROOT" && git describe --always --dirty 2>/dev/null || echo 'no git'))"
info "ironvault: $IV_VERSION"

# ---------------------------------------------------------------- work dir + python helper
mkdir -p "$BENCH_DIR"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd)
CORPUS=$BENCH_DIR/corpus
DB_FILE=$CORPUS/appdata.db
LOGS=$BENCH_DIR/logs
STATE=$BENCH_DIR/modification      # present while the corpus is modified
HELPER=$BENCH_DIR/bench_helper.py
RAW=$BENCH_DIR/results.raw
mkdir -p "$LOGS"
rm -f "$LOGS"/*

cat >"$HELPER" <<'PY'
"""Helpers for scripts/bench.sh: corpus file lists, the database file, the modification."""
import json, os, random, shutil, struct, sys, zlib, hashlib

PAGE = 8192
HDR = 32


def filelist(outdir, budget, cap, *roots):
    """Write NUL-separated lists (paths relative to /) of regular files <= cap and symlinks
    under roots, one list per corpus copy, until budget bytes of file data are covered."""
    entries = []

    def rec(d):
        try:
            es = sorted(os.scandir(d), key=lambda e: e.name)
        except OSError:
            return
        for e in es:
            try:
                if e.is_symlink():
                    entries.append((e.path, 0))
                elif e.is_dir(follow_symlinks=False):
                    rec(e.path)
                elif e.is_file(follow_symlinks=False):
                    s = e.stat(follow_symlinks=False).st_size
                    if s <= cap and os.access(e.path, os.R_OK):
                        entries.append((e.path, s))
            except OSError:
                pass

    for r in roots:
        if os.path.isdir(r):
            rec(r)
    if sum(s for _, s in entries) == 0:
        sys.exit("no files found under " + " ".join(roots))
    total, copies, done = 0, [], False
    while not done:
        cur = []
        for p, s in entries:
            if total + s > budget:
                done = True
                break
            cur.append(p)
            total += s
        copies.append(cur)
    for i, c in enumerate(copies, 1):
        with open(os.path.join(outdir, "list-%d" % i), "wb") as f:
            for p in c:
                f.write(p.lstrip("/").encode("utf-8", "surrogateescape") + b"\0")
    print(len(copies), sum(len(c) for c in copies), total)


def mkdb(path, size_mb, seed=20240601):
    """A page-structured, database-like file: 8 KiB pages with a header; table pages of
    (repeated) records, blob pages of random bytes, index pages half and half, free pages."""
    rng = random.Random(seed)
    words = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike "
             "november oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee "
             "zulu invoice order customer shipped pending paid refund account balance").split()
    cities = ["Berlin", "Lisbon", "Osaka", "Lima", "Accra", "Oslo", "Quito", "Hanoi", "Perth"]
    pool = []
    for i in range(4096):
        name = " ".join(rng.choice(words) for _ in range(rng.randint(2, 6)))
        pool.append(("%08d|%s|%s|%d.%02d|%s|2024-%02d-%02d" % (
            i, name, rng.choice(cities), rng.randint(0, 99999), rng.randint(0, 99),
            rng.choice(["active", "closed", "pending"]), rng.randint(1, 12), rng.randint(1, 28))).encode())
    npages = size_mb * 1024 * 1024 // PAGE
    rowid, lsn = 1, 1000
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        for p in range(npages):
            r = rng.random()
            kind = 0 if r < 0.05 else 1 if r < 0.50 else 2 if r < 0.75 else 3
            body = bytearray()
            nrec = 0
            if kind in (1, 3):
                limit = PAGE - HDR if kind == 1 else (PAGE - HDR) // 2
                while True:
                    rec = pool[rng.randrange(len(pool))]
                    entry = struct.pack("<QH", rowid, len(rec)) + rec
                    if len(body) + len(entry) > limit:
                        break
                    body += entry
                    nrec += 1
                    rowid += 1
            if kind in (2, 3):
                body += rng.randbytes(PAGE - HDR - len(body))
            body += bytes(PAGE - HDR - len(body))
            lsn += rng.randint(1, 50)
            hdr = struct.pack("<4sIIHHQ", b"IVDB", p, zlib.crc32(body), kind, nrec, lsn)
            f.write(hdr + bytes(HDR - len(hdr)) + body)
    os.replace(tmp, path)


def _hash(path):
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def apply(corpus, db, state):
    """Modify the corpus deterministically: insert 1 KiB in the middle of the db file
    (rewriting it from there on), change 1% of the small files, add 100 new files.
    Everything needed to undo it is saved in state/ first."""
    rng = random.Random(4242)
    files, dirs = [], []
    for dp, dns, fns in os.walk(corpus):
        dns.sort()
        dirs.append(dp)
        for fn in fns:
            p = os.path.join(dp, fn)
            if p != db and not os.path.islink(p) and os.path.isfile(p) and os.stat(p).st_nlink == 1:
                files.append(p)
    files.sort()
    dirs.sort()
    changed = files[37::100]
    newdirs = [dirs[(i * len(dirs)) // 100] for i in range(100)]
    os.makedirs(os.path.join(state, "stash"), exist_ok=True)
    dst = os.stat(db)
    man = {"db": db, "db_size": dst.st_size, "db_times": [dst.st_atime_ns, dst.st_mtime_ns],
           "db_hash": _hash(db), "db_offset": dst.st_size // 2, "changed": [], "new": [], "dirs": {}}
    for i, p in enumerate(changed):
        st = os.stat(p)
        s = os.path.join(state, "stash", str(i))
        shutil.copy2(p, s)
        man["changed"].append([p, s, st.st_atime_ns, st.st_mtime_ns])
    for d in set(newdirs):
        st = os.stat(d)
        man["dirs"][d] = [st.st_atime_ns, st.st_mtime_ns]
    for i, d in enumerate(newdirs):
        man["new"].append(os.path.join(d, "ironvault-bench-new-%03d.dat" % i))
    with open(os.path.join(state, "manifest.json"), "w") as f:
        json.dump(man, f)
    # 1% of the small files: content changed (appended) and mtime moved on.
    for i, (p, _, _, _) in enumerate(man["changed"]):
        with open(p, "ab") as f:
            f.write(b"\n# ironvault-bench change %d %s\n" % (i, rng.randbytes(8).hex().encode()))
    # 100 new files, 200 B .. 64 KiB, half text half random.
    for i, p in enumerate(man["new"]):
        n = rng.randint(200, 64 * 1024)
        text = (b"new file %d line\n" % i) * (n // 34 + 1)
        with open(p, "wb") as f:
            f.write(text[: n // 2] + rng.randbytes(n - n // 2))
    # the database: 1 KiB inserted in the middle, the rest shifted (rewritten from there).
    off = man["db_offset"]
    with open(db, "r+b") as f:
        f.seek(off)
        rest = f.read()
        f.seek(off)
        f.write(random.Random(99).randbytes(1024) + rest)
    print(len(man["changed"]), len(man["new"]))


def revert(state):
    mp = os.path.join(state, "manifest.json")
    if not os.path.exists(mp):
        shutil.rmtree(state, ignore_errors=True)
        return
    with open(mp) as f:
        man = json.load(f)
    for p, s, at, mt in man["changed"]:
        if os.path.exists(s):
            shutil.copyfile(s, p)
            os.utime(p, ns=(at, mt))
    for p in man["new"]:
        if os.path.lexists(p):
            os.unlink(p)
    db, size, off = man["db"], man["db_size"], man["db_offset"]
    if os.path.getsize(db) == size + 1024:
        with open(db, "r+b") as f:
            f.seek(off + 1024)
            rest = f.read()
            f.seek(off)
            f.write(rest)
            f.truncate(size)
    if os.path.getsize(db) != size or _hash(db) != man["db_hash"]:
        sys.exit("could not undo the change to %s; delete the corpus and run again" % db)
    os.utime(db, ns=tuple(man["db_times"]))
    for d, (at, mt) in man["dirs"].items():
        os.utime(d, ns=(at, mt))
    shutil.rmtree(state)


def render(raw, out):
    """Turn results.raw (key<TAB>value lines) into the markdown report."""
    r = {}
    with open(raw) as f:
        for line in f:
            k, _, v = line.rstrip("\n").partition("\t")
            r[k] = v
    MiB = 1024 * 1024
    corpus = int(r["corpus_bytes"])
    tools = ("ironvault", "restic")
    steps = [("init", "init"), ("full", "full backup"), ("nochange", "no-change backup"),
             ("nochange-warm", "no-change backup, warm cache"), ("changed", "backup after changes"), ("restore", "restore latest"),
             ("check", "check --read-data")]

    def num(k):
        v = r.get(k)
        try:
            return float(v)
        except (TypeError, ValueError):
            return None

    def ok(t, s):
        return r.get("%s.%s.rc" % (t, s)) == "0"

    def secs(t, s):
        v = num("%s.%s.s" % (t, s))
        if v is None:
            return "n/a"
        return ("%.2f" % v) + ("" if ok(t, s) else " (FAILED rc=%s)" % r.get("%s.%s.rc" % (t, s)))

    def rate(t, s):
        v = num("%s.%s.s" % (t, s))
        if v is None or s == "init" or not ok(t, s):
            return "-"
        b = int(r.get("%s.repo_final" % t, 0)) if s == "check" else corpus
        return "%.1f" % (b / MiB / max(v, 0.01))

    def rss(t, s):
        v = num("%s.%s.kib" % (t, s))
        return "-" if v is None else "%.0f" % (v / 1024)

    def ratio(s):
        a, b = num("ironvault.%s.s" % s), num("restic.%s.s" % s)
        if a is None or b is None or not ok("ironvault", s) or not ok("restic", s):
            return None
        return b / max(a, 0.01)

    L = []
    L.append("| step | ironvault s | restic s | ratio (restic/ironvault) | ironvault MiB/s | restic MiB/s "
             "| peak RSS ironvault MiB | peak RSS restic MiB |")
    L.append("|---|---:|---:|---:|---:|---:|---:|---:|")
    for s, name in steps:
        q = ratio(s)
        L.append("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
            name, secs("ironvault", s), secs("restic", s), "-" if q is None else "%.2fx" % q,
            rate("ironvault", s), rate("restic", s), rss("ironvault", s), rss("restic", s)))
    L.append("")
    L.append("| repository size | ironvault | restic | ratio (ironvault/restic) |")
    L.append("|---|---:|---:|---:|")
    repo_ratio = {}
    for k, name in (("repo_full", "after full backup"), ("repo_final", "after all 4 backups")):
        a, b = num("ironvault." + k), num("restic." + k)
        repo_ratio[k] = a / b if a and b else None
        L.append("| %s | %s | %s | %s |" % (
            name, "-" if a is None else "%.1f MiB (%d B)" % (a / MiB, a),
            "-" if b is None else "%.1f MiB (%d B)" % (b / MiB, b),
            "-" if repo_ratio[k] is None else "%.3f" % repo_ratio[k]))
    L.append("")
    lim = num("limit.s")
    L.append("Machine limit (`tar -cf - corpus | tee >(b3sum) | zstd -3 -T0 > /dev/null`, cold cache): "
             "%.2f s = **%.1f MiB/s** over the same %.1f MiB." % (lim, corpus / MiB / max(lim, 0.01), corpus / MiB))
    w = num("walk.s")
    L.append("Metadata walk limit (`find corpus -printf '%%s %%T@\\n'`, cold cache): %.2f s for %s files, "
             "symlinks and directories." % (w, r.get("corpus_entries")))
    fb = num("ironvault.full.s")
    if fb and ok("ironvault", "full"):
        L.append("ironvault full backup: %.1f MiB/s = %.0f%% of the machine limit." % (
            corpus / MiB / fb, 100 * (lim / fb)))
    L.append("")
    noisy = []
    for t in tools:
        for s, name in steps:
            o = num("%s.%s.other" % (t, s))
            if o is not None and o >= 0.5:
                noisy.append("%s %s %.1f" % (t, name, o))
    for k in ("limit", "walk"):
        o = num(k + ".other")
        if o is not None and o >= 0.5:
            noisy.append("machine %s %.1f" % (k, o))
    if noisy:
        L.append("**Noise warning**: other processes used CPU during these steps (CPU-seconds): %s. "
                 "The machine was not idle; rerun on an idle machine for clean numbers." % "; ".join(noisy))
    else:
        L.append("The machine was idle during the timed steps (other processes used < 0.5 CPU-s in each).")
    L.append("")
    L.append("Restore verification (path, type, mode, owner, size, BLAKE3 of content, symlink target): "
             "ironvault **%s**, restic **%s**. File mtimes: ironvault %s, restic %s." % (
                 r.get("ironvault.verify", "n/a"), r.get("restic.verify", "n/a"),
                 r.get("ironvault.mtimes", "n/a"), r.get("restic.mtimes", "n/a")))
    L.append("Snapshots in the repository at the end: ironvault %s, restic %s (expected 4)." % (
        r.get("ironvault.snapshots", "n/a"), r.get("restic.snapshots", "n/a")))
    L.append("")
    L.append("Targets:")

    def verdict(c):
        return "n/a (step failed)" if c is None else ("**met**" if c else "**missed**")

    q = ratio("full")
    L.append("- full backup >= 1.5x restic throughput: %s (%s)" % (
        verdict(None if q is None else q >= 1.5), "-" if q is None else "%.3fx" % q))
    nc, ncw = num("ironvault.nochange.s"), num("ironvault.nochange-warm.s")
    if not ok("ironvault", "nochange") or not ok("ironvault", "nochange-warm") or nc is None or ncw is None:
        v = verdict(None)
    elif nc < 1.0:
        v = verdict(True)
    elif ncw < 1.0:
        v = "**met with a warm page cache only**"
    else:
        v = verdict(False)
    L.append("- no-change backup of %s files < 1 s incl. key unlock: %s (%s s cold cache, %s s warm cache)" % (
        r.get("corpus_files"), v, "-" if nc is None else "%.2f" % nc, "-" if ncw is None else "%.2f" % ncw))
    q = ratio("restore")
    good = r.get("ironvault.verify") == "match"
    L.append("- restore >= 2x restic: %s (%s%s)" % (
        verdict(None if q is None else (q >= 2.0 and good)), "-" if q is None else "%.3fx" % q,
        "" if good else "; ironvault's restore did NOT match the corpus"))
    rr = repo_ratio["repo_final"]
    rf = repo_ratio["repo_full"]
    L.append("- repository <= 1.02x restic size: %s (%s after all backups, %s after the full backup)" % (
        verdict(None if rr is None or rf is None else (rr <= 1.02 and rf <= 1.02)),
        "-" if rr is None else "%.3fx" % rr, "-" if rf is None else "%.3fx" % rf))
    worse = []
    for s, name in steps:
        a, b = num("ironvault.%s.kib" % s), num("restic.%s.kib" % s)
        if a is not None and b is not None and a > b:
            worse.append("%s %.0f > %.0f MiB" % (name, a / 1024, b / 1024))
    L.append("- peak RSS <= restic's (every step): %s%s" % (
        verdict(not worse), "" if not worse else " (" + "; ".join(worse) + ")"))
    text = "\n".join(L) + "\n"
    with open(out, "w") as f:
        f.write(r.get("header", "") .replace("\\n", "\n") + "\n" + text)
    sys.stdout.write(text)


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "filelist":
        filelist(args[0], int(args[1]), int(args[2]), *args[3:])
    elif cmd == "mkdb":
        mkdb(args[0], int(args[1]))
    elif cmd == "apply":
        apply(*args)
    elif cmd == "revert":
        revert(*args)
    elif cmd == "render":
        render(*args)
    else:
        sys.exit("unknown helper command " + cmd)
PY

revert_modification() {
    if [ -e "$STATE" ]; then
        info "undoing the corpus modification"
        python3 "$HELPER" revert "$STATE"
    fi
}
on_exit() {
    local rc=$?
    if [ -e "$STATE" ]; then
        python3 "$HELPER" revert "$STATE" || echo "warning: could not undo the corpus modification; delete $CORPUS" >&2
    fi
    rm -f "$BENCH_DIR/limit.fifo"
    exit $rc
}
trap on_exit EXIT

# ---------------------------------------------------------------- 3. corpus
STAMP_WANT="v1 size_mb=$BENCH_SIZE_MB db_mb=$BENCH_DB_MB max_file_kb=$BENCH_MAX_FILE_KB"
say "corpus in $CORPUS ($BENCH_SIZE_MB MiB target: /usr copies + a $BENCH_DB_MB MiB database file)"
if [ -e "$STATE" ] && [ -d "$CORPUS" ]; then
    info "a previous run left the corpus modified"
    revert_modification || { rm -rf "$CORPUS" "$STATE"; }
fi
if [ -d "$CORPUS" ] && [ -f "$BENCH_DIR/corpus.stamp" ] && [ "$(cat "$BENCH_DIR/corpus.stamp")" = "$STAMP_WANT" ]; then
    info "reusing the corpus from an earlier run ($STAMP_WANT)"
else
    rm -rf "$CORPUS" "$BENCH_DIR/corpus.stamp" "$BENCH_DIR/lists"
    mkdir -p "$CORPUS" "$BENCH_DIR/lists"
    budget=$(( (BENCH_SIZE_MB - BENCH_DB_MB) * 1024 * 1024 ))
    read -r ncopies nentries nbytes < <(python3 "$HELPER" filelist "$BENCH_DIR/lists" "$budget" \
        $(( BENCH_MAX_FILE_KB * 1024 )) /usr/include /usr/share /usr/bin /usr/lib)
    info "copying $nentries files and symlinks ($(( nbytes / 1024 / 1024 )) MiB) from /usr/{include,share,bin,lib} in $ncopies copies"
    for ((i = 1; i <= ncopies; i++)); do
        mkdir -p "$CORPUS/usr-$i"
        tar -C / --null --no-recursion -T "$BENCH_DIR/lists/list-$i" -cf - | tar -C "$CORPUS/usr-$i" -xpf -
    done
    info "generating $DB_FILE ($BENCH_DB_MB MiB, 8 KiB pages, fixed seed)"
    python3 "$HELPER" mkdb "$DB_FILE" "$BENCH_DB_MB"
    echo "$STAMP_WANT" >"$BENCH_DIR/corpus.stamp"
fi
CORPUS_BYTES=$(find "$CORPUS" -type f -printf '%s\n' | awk '{s+=$1} END {printf "%d", s}')
CORPUS_FILES=$(find "$CORPUS" -type f | wc -l)
CORPUS_LINKS=$(find "$CORPUS" -type l | wc -l)
CORPUS_DIRS=$(find "$CORPUS" -type d | wc -l)
CORPUS_DESC="$CORPUS_FILES files, $CORPUS_LINKS symlinks, $CORPUS_DIRS directories, $CORPUS_BYTES bytes ($(( CORPUS_BYTES / 1024 / 1024 )) MiB)"
info "corpus: $CORPUS_DESC"
info "database file compresses with zstd -3 to $(zstd -3 -T0 -q -c "$DB_FILE" | wc -c) of $(stat -c %s "$DB_FILE") bytes"

# ---------------------------------------------------------------- timing helpers
CACHES_DROPPED=unknown
drop_caches() {
    sync
    if { echo 3 >/proc/sys/vm/drop_caches; } 2>/dev/null; then
        [ "$CACHES_DROPPED" = no ] || CACHES_DROPPED=yes
    else
        CACHES_DROPPED=no
    fi
}

: >"$RAW"
put() { printf '%s\t%s\n' "$1" "$2" >>"$RAW"; }
put corpus_bytes "$CORPUS_BYTES"
put corpus_files "$CORPUS_FILES"
put corpus_entries "$(( CORPUS_FILES + CORPUS_LINKS + CORPUS_DIRS ))"
FAILED_STEPS=()

# timed TOOL STEP CMD...: drop caches, run CMD under /usr/bin/time, record seconds, KiB, rc.
# With WARM=1 in the environment the page cache is left as it is (the step right before warmed it).
timed() {
    local tool=$1 step=$2
    shift 2
    local log=$LOGS/$tool-$step.log tf=$LOGS/$tool-$step.time rc=0 e m u sy b0 b1 other
    [ "${WARM:-0}" = 1 ] || drop_caches
    printf '    %-9s %-13s ' "$tool" "$step"
    b0=$(busy_ticks)
    /usr/bin/time -f '%e %M %U %S' -o "$tf" "$@" >"$log" 2>&1 || rc=$?
    b1=$(busy_ticks)
    read -r e m u sy < <(tail -n 1 "$tf")
    # CPU time that other processes (e.g. a build running at the same time) used during the step.
    other=$(awk -v b="$(( b1 - b0 ))" -v hz="$CLK_TCK" -v u="$u" -v s="$sy" 'BEGIN {o = b / hz - u - s; if (o < 0) o = 0; printf "%.1f", o}')
    put "$tool.$step.s" "$e"
    put "$tool.$step.kib" "$m"
    put "$tool.$step.rc" "$rc"
    put "$tool.$step.other" "$other"
    printf '%8s s  %6s MiB peak RSS  %5s CPU-s used by other processes' "$e" "$(( m / 1024 ))" "$other"
    if [ "$rc" -ne 0 ]; then
        printf '  FAILED (exit %s); command: %s\n' "$rc" "$*"
        sed 's/^/        | /' "$log" | tail -n 20
        FAILED_STEPS+=("$tool $step: exit $rc: $* (log: $log)")
    else
        printf '\n'
    fi
    return 0
}

CLK_TCK=$(getconf CLK_TCK)
# busy CPU ticks of the whole machine (user+nice+system+irq+softirq+steal).
busy_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9; exit}' /proc/stat; }

# listing DIR OUT: everything that must survive a backup and restore, in a stable order.
listing() {
    (
        cd "$1"
        find . \( -type d -printf 'd %m %U:%G %p\n' \) -o \( -type l -printf 'l %U:%G %p -> %l\n' \) \
            -o \( -type f -printf 'f %m %U:%G %s %p\n' \) -o -printf '? %y %p\n' | sort
        find . -type f -print0 | sort -z | xargs -0 -r b3sum
    ) >"$2"
}
mtimes() { (cd "$1" && find . -type f -printf '%T@ %p\n' | sort) >"$2"; }

# ---------------------------------------------------------------- 6. machine limit
say "machine limit: tar -cf - corpus | tee >(b3sum >/dev/null) | zstd -3 -T0 >/dev/null"
FIFO=$BENCH_DIR/limit.fifo
rm -f "$FIFO"
mkfifo "$FIFO"
timed machine limit bash -c 'set -o pipefail; b3sum <"$2" >/dev/null & tar -C "$1" -cf - . | tee "$2" | zstd -3 -T0 -q >/dev/null; rc=$?; wait $! || rc=$?; exit $rc' _ "$CORPUS" "$FIFO"
rm -f "$FIFO"
say "metadata walk limit (what a no-change backup cannot beat): find corpus -printf '%s %T@\\n' >/dev/null"
timed machine walk bash -c 'find "$1" -printf "%s %T@\\n" >/dev/null' _ "$CORPUS"
sed -i 's/^machine\.\(limit\|walk\)\./\1./' "$RAW"

# ---------------------------------------------------------------- 4./5. the two tools
run_tool() {
    local tool=$1
    local repo=$BENCH_DIR/repo-$tool rdir=$BENCH_DIR/restore-$tool restored n
    local -a init backup restore check snaps
    rm -rf "$repo" "$rdir"
    case $tool in
    ironvault)
        init=("$IV" init --repo "$repo")
        backup=("$IV" backup --repo "$repo" "$CORPUS")
        restore=("$IV" restore --repo "$repo" latest --target "$rdir")
        check=("$IV" check --repo "$repo" --read-data)
        snaps=("$IV" snapshots --repo "$repo" --json)
        restored=$rdir/$(basename "$CORPUS")
        ;;
    restic)
        # restic's default local cache, kept inside the work dir so every run starts fresh.
        export RESTIC_CACHE_DIR=$BENCH_DIR/restic-cache
        rm -rf "$RESTIC_CACHE_DIR"
        init=("$RESTIC" -r "$repo" init)
        backup=("$RESTIC" -r "$repo" backup "$CORPUS")
        restore=("$RESTIC" -r "$repo" restore latest --target "$rdir")
        check=("$RESTIC" -r "$repo" check --read-data)
        snaps=("$RESTIC" -r "$repo" snapshots --json)
        restored=$rdir$CORPUS
        ;;
    esac
    say "$tool (repository $repo, logs in $LOGS/$tool-*.log)"
    timed "$tool" init "${init[@]}"
    timed "$tool" full "${backup[@]}"
    put "$tool.repo_full" "$(du -sb "$repo" | cut -f1)"
    timed "$tool" nochange "${backup[@]}"
    WARM=1 timed "$tool" nochange-warm "${backup[@]}"
    read -r nchanged nnew < <(python3 "$HELPER" apply "$CORPUS" "$DB_FILE" "$STATE")
    info "corpus modified: 1 KiB inserted in the middle of appdata.db, $nchanged files changed, $nnew files added"
    timed "$tool" changed "${backup[@]}"
    put "$tool.repo_final" "$(du -sb "$repo" | cut -f1)"
    timed "$tool" restore "${restore[@]}"
    if [ -d "$restored" ]; then
        listing "$CORPUS" "$BENCH_DIR/listing-corpus.txt"
        listing "$restored" "$BENCH_DIR/listing-$tool.txt"
        if diff -q "$BENCH_DIR/listing-corpus.txt" "$BENCH_DIR/listing-$tool.txt" >/dev/null; then
            put "$tool.verify" "match"
            info "restored tree matches the corpus"
        else
            n=$(diff "$BENCH_DIR/listing-corpus.txt" "$BENCH_DIR/listing-$tool.txt" | grep -c '^[<>]' || true)
            put "$tool.verify" "MISMATCH ($n differing lines, see $LOGS/$tool-verify.diff)"
            diff "$BENCH_DIR/listing-corpus.txt" "$BENCH_DIR/listing-$tool.txt" >"$LOGS/$tool-verify.diff" || true
            info "restored tree DIFFERS from the corpus ($n lines); first lines of $LOGS/$tool-verify.diff:"
            head -n 20 "$LOGS/$tool-verify.diff" | sed 's/^/        | /'
        fi
        mtimes "$CORPUS" "$BENCH_DIR/mtimes-corpus.txt"
        mtimes "$restored" "$BENCH_DIR/mtimes-$tool.txt"
        n=$(diff "$BENCH_DIR/mtimes-corpus.txt" "$BENCH_DIR/mtimes-$tool.txt" | grep -c '^>' || true)
        if [ "$n" = 0 ]; then put "$tool.mtimes" "all match"; else put "$tool.mtimes" "$n differ"; fi
    else
        put "$tool.verify" "MISSING (no $restored after restore)"
        info "no restored tree at $restored"
    fi
    [ "$BENCH_KEEP" = 1 ] || rm -rf "$rdir"
    timed "$tool" check "${check[@]}"
    n=$("${snaps[@]}" 2>/dev/null | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))' 2>/dev/null || echo "error")
    put "$tool.snapshots" "$n"
    revert_modification
}

run_tool ironvault
run_tool restic

# ---------------------------------------------------------------- 7. report
CPU=$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || echo unknown)
HEADER="# ironvault vs restic benchmark\\n\\n"
HEADER+="- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')\\n"
HEADER+="- machine: $(nproc) CPUs, $CPU, $(awk '/MemTotal/ {printf "%.1f GiB RAM", $2/1048576}' /proc/meminfo), kernel $(uname -r)\\n"
HEADER+="- ironvault: $IV_VERSION; $RESTIC_VERSION (default settings: compression auto)\\n"
HEADER+="- corpus: $CORPUS_DESC; copies of /usr/{include,share,bin,lib} (files <= $BENCH_MAX_FILE_KB KiB) + a $BENCH_DB_MB MiB page-structured database file\\n"
HEADER+="- change between backup 2 and 3: 1 KiB inserted in the middle of the database file, 1% of the small files changed, 100 files added\\n"
HEADER+="- page cache dropped before each timed step (except the warm-cache no-change backup): $CACHES_DROPPED\\n"
HEADER+="- command: \`BENCH_SIZE_MB=$BENCH_SIZE_MB scripts/bench.sh\`\\n"
put header "$HEADER"
say "results (also in $BENCH_DIR/results.md)"
printf "%b\n" "$HEADER" | sed 's/^# //'
python3 "$HELPER" render "$RAW" "$BENCH_DIR/results.md"
# ---------------------------------------------------------------- 8. object storage
if [ "${BENCH_S3:-1}" = 1 ]; then
    say "S3: the same corpus on a loopback Garage server (scripts/bench-s3.sh; BENCH_S3=0 skips)"
    BENCH_DIR=$BENCH_DIR BENCH_CORPUS=$CORPUS "$REPO_ROOT/scripts/bench-s3.sh" || FAILED_STEPS+=("bench-s3.sh")
fi
if [ "${BENCH_PRUNE:-1}" = 1 ]; then
    say "forget + prune after a series of backups (scripts/bench-prune.sh; BENCH_PRUNE=0 skips)"
    BENCH_DIR=$BENCH_DIR BENCH_CORPUS=$CORPUS "$REPO_ROOT/scripts/bench-prune.sh" || FAILED_STEPS+=("bench-prune.sh")
fi
if [ "${BENCH_PLANS:-1}" = 1 ]; then
    say "protection plans: run and drill against the plain commands (scripts/bench-plans.sh; BENCH_PLANS=0 skips)"
    BENCH_DIR=$BENCH_DIR BENCH_CORPUS=$CORPUS "$REPO_ROOT/scripts/bench-plans.sh" || FAILED_STEPS+=("bench-plans.sh")
fi
if [ ${#FAILED_STEPS[@]} -gt 0 ]; then
    printf '\nFailed steps:\n'
    printf '  - %s\n' "${FAILED_STEPS[@]}"
    exit 1
fi
