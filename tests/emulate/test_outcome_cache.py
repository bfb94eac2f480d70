"""The outcome table is cached by emulator version, atomically, and heals a corrupted entry."""


import workbench.emulate.explore as ex


def test_cache_serves_and_heals(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_DATA", str(tmp_path))
    sc = tmp_path / "one.toml"
    sc.write_text('[ops.t]\nkind = "tracer"\nfunctions = ["fn_00001"]\n'
                  '[transition]\nbefore = []\nafter = ["t"]\n')
    runs = []
    real = ex.explore
    monkeypatch.setattr(ex, "explore", lambda *a, **k: (runs.append(1), real(*a, **k))[1])
    first = ex.load_outcome_table(str(sc), progress=False)
    assert len(runs) == 1 and len(first) > 0
    files = list((tmp_path / "cache" / "outcomes").rglob("*.parquet"))
    assert len(files) == 1 and not list((tmp_path / "cache").rglob("*.tmp"))
    again = ex.load_outcome_table(str(sc), progress=False)
    assert len(runs) == 1 and again.equals(first)  # served from the cache
    files[0].write_bytes(b"not parquet")
    healed = ex.load_outcome_table(str(sc), progress=False)
    assert len(runs) == 2 and healed.equals(first)
    assert files[0].read_bytes().startswith(b"wbstore1 ") and b"PAR1" in files[0].read_bytes()
