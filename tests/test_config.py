

def test_profile_and_predictor_paths_resolve_beside_the_config_file(tmp_path, monkeypatch) -> None:
    """A deployment folder (config + profile + predictor) serves from any working directory;
    built-in profile names and missing files are left as written."""
    from argus.config import load_config_file

    (tmp_path / "profile.json").write_text("{}")
    (tmp_path / "c.yaml").write_text(
        "variants: [{name: v, source: 'random:pixel-small', default_steps: 20, resolution: 32}]\n"
        "levels: [{name: v-20, variant: v, steps: 20}]\n"
        "control: {profile: profile.json, predictor: absent.json}\n")
    monkeypatch.chdir("/")
    control = load_config_file(tmp_path / "c.yaml").control
    assert control.profile == str(tmp_path / "profile.json")
    assert control.predictor == "absent.json"
