from orchestration.definitions import defs
from tests.platform.dagster_dev import graphql, running_dagster_dev

ASSET_NODES = "{ assetNodes { assetKey { path } groupName } }"


def test_ui_lists_every_asset_with_its_group(tmp_path):
    expected = {
        (node.key.to_user_string(), node.group_name) for node in defs.get_repository_def().asset_graph.asset_nodes
    }
    with running_dagster_dev(tmp_path) as url:
        nodes = graphql(url, ASSET_NODES)["assetNodes"]
    shown = {("/".join(node["assetKey"]["path"]), node["groupName"]) for node in nodes}
    assert expected <= shown
    assert any(group == "eis" for _, group in shown)
