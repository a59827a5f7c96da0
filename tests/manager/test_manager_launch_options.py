"""``GET /resource/launch-options`` against a live manager: the choices of the start dialog."""

from __future__ import annotations

from jupyter_backendai.db import admin


def test_launch_options_follow_projects_registries_and_resource_groups(manager):
    def setup(db):
        admin.add_registry(db, "reg.example:5000", "http://reg.example:5000")
        research = admin.create_group(db, "research", allowed_docker_registries=["reg.example:5000"])
        alice = admin.get_user(db, "alice")
        admin.add_user_to_group(db, research, alice)
        admin.add_user_to_group(db, admin.get_group(db, "default"), alice)
        admin.upsert_image(db, "python-local:3", installed=True, labels={"ai.backend.resource.min.cpu": "1"})
        admin.upsert_image(db, "reg.example:5000/lab/torch:2", installed=True)
        admin.upsert_image(db, "reg.example:5000/lab/old:1", installed=False)

    manager.pdb.setup(setup)
    mine = manager.call("GET", "/resource/launch-options", "alice")
    assert mine.status_code == 200, mine.text
    answer = mine.json()
    assert [g["name"] for g in answer["groups"]] == ["default", "research"]
    assert answer["group"] == "default"
    assert answer["scaling_groups"] == ["default"]
    # The default project allows no registry: only local images.
    assert [i["reference"] for i in answer["images"]] == ["python-local:3"]
    assert answer["images"][0]["resource_limits"] == {"cpu": "1"}

    research = manager.call("GET", "/resource/launch-options?group=research", "alice").json()
    assert research["group"] == "research"
    assert sorted(i["reference"] for i in research["images"]) == ["python-local:3", "reg.example:5000/lab/torch:2"]

    refused = manager.call("GET", "/resource/launch-options?group=research", "bob")
    assert refused.status_code == 403 and "not a member of the project 'research'" in refused.json()["title"]
    assert manager.call("GET", "/resource/launch-options").status_code == 401
