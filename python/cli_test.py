"""The `sattn` command line: every verb on a small case, usage errors, profile schema validation."""
import base64
import contextlib
import copy
import html
import io
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from sattn import cli
from sattn.cli import profiles


def run(*argv, capsys):
    rc = cli.main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_help_of_every_verb(capsys):
    for verb in ([], ["doctor"], ["profiles"], ["profiles", "list"], ["profiles", "show"], ["plan"],
                 ["bench"], ["autotune"], ["report"]):
        with pytest.raises(SystemExit) as e:
            cli.main(verb + ["--help"])
        assert e.value.code == 0
        assert "usage: sattn" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [
    ["frobnicate"],
    ["doctor", "--bogus"],
    ["plan", "--profile", "bigbird-base-4k", "--seq-len", "-3"],
    ["plan"],
    ["profiles", "show"],
    ["bench", "--profile", "bigbird-base-4k", "--mode", "sideways"],
    ["report", "x.jsonl"],
    ["autotune", "--backend", "gpu", "--profile", "bigbird-base-4k"],
])
def test_usage_errors_exit_2_with_one_line(argv, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "error:" in err and "Traceback" not in err


@pytest.mark.parametrize("argv", [
    ["profiles", "show", "no-such-profile"],
    ["plan", "--profile", "no-such-profile"],
    ["bench"],
])
def test_bad_values_exit_2_with_one_line(argv, capsys):
    rc, _, err = run(*argv, capsys=capsys)
    assert rc == 2
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_doctor_lists_every_backend(capsys):
    rc, out, _ = run("doctor", "--json", capsys=capsys)
    assert rc == 0
    rep = json.loads(out)
    assert set(rep["backends"]) == {"reference", "cpu", "triton", "rvv", "rocc"}
    assert rep["backends"]["reference"]["usable"] and rep["backends"]["cpu"]["usable"]
    for b in rep["backends"].values():
        assert b["usable"] or b["why_not"]  # each unusable one says why


def test_shipped_profiles_are_valid_and_listed(capsys):
    profs = profiles.load_all()
    assert {"llama3-8b-128k-blocktopk", "mistral-7b-sliding-4k", "bigbird-base-4k",
            "llama3-8b-decode-32k"} <= set(profs)
    assert profs["llama3-8b-decode-32k"].shape()["Lq"] == 1
    assert profs["llama3-8b-128k-blocktopk"].shape()["Lk"] == 131072
    rc, out, _ = run("profiles", "list", capsys=capsys)
    assert rc == 0 and "mistral-7b-sliding-4k" in out
    rc, out, _ = run("profiles", "show", "mistral-7b-sliding-4k", "--json", capsys=capsys)
    assert json.loads(out)["spec"]["window"] == 4096


def _good():
    with open(os.path.join(profiles.SHIPPED_DIR, "bigbird-base-4k.json")) as f:
        return json.load(f)


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.pop("spec"), "missing required 'spec'"),
    (lambda d: d.update(dtype="float8"), "expected one of"),
    (lambda d: d["model"].update(heads="12"), "expected integer"),
    (lambda d: d["model"].update(heads=True), "expected integer"),
    (lambda d: d["shape"].update(seq_len=0), "below the minimum"),
    (lambda d: d.update(colour="red"), "unknown key 'colour'"),
    (lambda d: d["spec"].update(windw=3), "no field(s) windw"),
    (lambda d: d["spec"].update(kind="ring"), "expected one of"),
    (lambda d: d["model"].update(kv_heads=5), "not a multiple"),
    (lambda d: d["spec"].update(block=0), "block"),
    (lambda d: d.update(name="Bad Name"), "does not match"),
])
def test_schema_rejects_bad_profiles(edit, message):
    data = copy.deepcopy(_good())
    edit(data)
    with pytest.raises(profiles.ProfileError, match=re.escape(message)):
        profiles.check(data, "p.json")


def test_user_profiles_dir_and_check(tmp_path, capsys):
    data = _good()
    data.update(name="tiny-bigbird", description="a user profile")
    data["shape"]["seq_len"] = 512
    (tmp_path / "tiny-bigbird.json").write_text(json.dumps(data))
    rc, out, _ = run("profiles", "list", "--profiles-dir", str(tmp_path), capsys=capsys)
    assert rc == 0 and "tiny-bigbird" in out
    rc, out, _ = run("profiles", "check", str(tmp_path / "tiny-bigbird.json"), capsys=capsys)
    assert rc == 0 and "ok" in out
    bad = dict(data, dtype="int4")
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    rc, _, err = run("profiles", "check", str(tmp_path / "bad.json"), capsys=capsys)
    assert rc == 2 and "dtype" in err


def test_plan_stats_counts_match_the_plan(capsys):
    rc, out, _ = run("plan", "--profile", "mistral-7b-sliding-4k", "--quick", "--seq-len", "512",
                     "--stats", "--json", capsys=capsys)
    assert rc == 0
    st = json.loads(out)
    # SlidingWindow(256, causal) at L=512: each query sees min(p+1, 256) keys.
    L, w = 512, 256
    visible = sum(min(p + 1, w) for p in range(L)) * st["shape"]["B"] * st["shape"]["Hq"]
    assert st["visible_pairs"] == visible
    assert st["density"] == pytest.approx(visible / (st["shape"]["Hq"] * L * L))
    assert sum(st["histogram"]["rows"]) == st["plan_rows"]
    rc, out, _ = run("plan", "--profile", "bigbird-base-4k", "--quick", "--stats", capsys=capsys)
    assert rc == 0 and "key blocks per row" in out and "density" in out


def test_autotune_caches_a_config_no_slower_than_default(tmp_path, capsys):
    rc, out, _ = run("autotune", "--profile", "mistral-7b-sliding-4k", "--quick", "--seq-len", "512",
                     "--heads", "2", "--repeat", "1", "--cache-dir", str(tmp_path), "--json", capsys=capsys)
    assert rc == 0
    res = json.loads(out)
    assert res["best"]["time_ms"] <= res["default"]["time_ms"]
    assert {"tile": 64, "threads": 0} in [c["config"] for c in res["candidates"]]
    cache = json.loads((tmp_path / "autotune.json").read_text())
    assert cache["entries"][res["key"]]["config"] == res["best"]["config"]
    from sattn import tuning
    prof = profiles.get("mistral-7b-sliding-4k")
    shape = prof.shape(True, seq_len=512, heads=2)
    key = tuning.key("cpu", tuning.cpu_device(), prof.spec(True), shape, "bfloat16")
    assert key == res["key"] and tuning.lookup(key, "cpu", str(tmp_path)) == res["best"]["config"]


@pytest.fixture(scope="module")
def bench_report(tmp_path_factory):
    """(rows, report page path): a small cpu bench through `sattn bench`, then `sattn report`."""
    tmp = tmp_path_factory.mktemp("bench")
    results = tmp / "r.jsonl"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = cli.main(["bench", "--profile", "bigbird-base-4k", "--quick", "--seq-len", "256", "--heads", "1",
                       "--kv-heads", "1", "--out", str(results), "--format", "jsonl", "--", "--repeat=1",
                       "--warmup=0"])
    assert rc == 0
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [json.loads(line) for line in results.read_text().splitlines()] == rows
    page_path = tmp / "report.html"
    with contextlib.redirect_stdout(io.StringIO()):
        assert cli.main(["report", str(results), "-o", str(page_path)]) == 0
    return rows, page_path


def test_bench_and_report(bench_report, capsys):
    rows, page_path = bench_report
    assert rows and rows[0]["system"] == "cpu" and rows[0]["Lk"] == 256 and rows[0]["spec"] == "BigBird"
    assert rows[0]["max_abs_err"] < 1e-4
    rc, _, err = run("bench", "--profile", "bigbird-base-4k", "--", "--no_such_flag", capsys=capsys)
    assert rc == 2 and "no_such_flag" in err
    page = page_path.read_text()
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page
    assert not re.search(r'(src|href)="(?!data:)', page)  # self-contained: no other file
    imgs = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(imgs) >= 3  # time/speedup, density, error (no rvv/rocc rows here)
    import matplotlib.image as mpimg
    for b in imgs:
        img = mpimg.imread(io.BytesIO(base64.b64decode(b)), format="png")
        assert img.shape[0] > 100 and img.shape[1] > 100 and img.std() > 0  # decodes, not blank
    assert "RoCC roofline: no rows" in page


def chromium():
    """A headless Chromium on PATH (tools/setup.sh installs Debian's chromium-headless-shell)."""
    for name in ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


# Appended to a copy of the report (the page itself has no script): once the page has loaded,
# which of its images the browser decoded, with their sizes.
PROBE = """<script>addEventListener("load", () => {
  const imgs = [...document.images];
  const drawn = imgs.filter(i => i.complete && i.naturalWidth > 100 && i.naturalHeight > 100);
  const p = document.createElement("pre");
  p.id = "probe";
  p.textContent = JSON.stringify({images: imgs.length, drawn: drawn.length, title: document.title,
                                  headings: document.querySelectorAll("h2").length});
  document.body.appendChild(p);
});</script>"""


def _without_sanitizer_runtime(environ) -> dict:
    """The environment for an outside program: --config=asan preloads the ASan runtime into every
    test process, and Chromium started under that preload hangs past the test's timeout."""
    return {k: v for k, v in environ.items() if k not in ("LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS")}


def test_report_renders_in_headless_chromium(request, tmp_path):
    browser = chromium()
    if browser is None:
        pytest.skip("no chromium or chromium-headless-shell on PATH (tools/setup.sh installs "
                    "chromium-headless-shell from Debian)")
    page = request.getfixturevalue("bench_report")[1].read_text()
    n = len(re.findall(r'<img [^>]*src="data:image/png;base64,', page))
    assert n >= 3
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", PROBE + "</body>"))
    res = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                          f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000",
                          "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120,
                         env=_without_sanitizer_runtime(os.environ))
    assert res.returncode == 0, res.stderr[-2000:]
    found = re.search(r'<pre id="probe">(.*?)</pre>', res.stdout, re.S)
    assert found, f"the page did not load in {browser}: {res.stdout[:500]} {res.stderr[-1000:]}"
    info = json.loads(html.unescape(found.group(1)))
    assert info["images"] == n and info["drawn"] == n, info  # every plot decoded, none broken
    assert info["title"] and info["headings"] >= 3


def test_python_dash_m_sattn_runs_the_same_cli():
    res = subprocess.run([sys.executable, "-m", "sattn", "profiles", "list"], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert res.returncode == 0, res.stderr
    assert "bigbird-base-4k" in res.stdout
