"""Release step, after the approval: the challenger becomes the champion and takes production traffic.

Moves ``flights-delay@champion`` to the version ``@challenger`` names, points the
online endpoint's blue deployment at it (``blue.yml`` names ``@champion``) and sends
blue all the traffic. The store is the only thing changed: a running ``keel up``
starts blue's new workers and swaps them in once they are ready.
"""

import argparse
import json
from pathlib import Path

from keel.endpoints.online.client import poke
from keel.endpoints.online.deployments import update_deployment
from keel.endpoints.online.records import update_endpoint
from keel.endpoints.online.specs import read_deployment
from keel.models.aliases import set_alias
from keel.models.registry import resolve_model
from keel.workspace import Workspace, resolve_workspace

parser = argparse.ArgumentParser()
parser.add_argument("--report", required=True, help="the compare step's report, as approved")
parser.add_argument("--deployment", required=True, help="the blue deployment's YAML file")
args = parser.parse_args()

report = json.loads((Path(args.report) / "report.json").read_text())
workspace = Workspace(resolve_workspace())  # the job's own workspace (KEEL_WORKSPACE)
challenger = resolve_model(workspace, "azureml:flights-delay@challenger")
set_alias(workspace, "flights-delay", "champion", challenger.version)
spec = read_deployment(Path(args.deployment))
blue = update_deployment(workspace, spec, base=Path(args.deployment).parent)
update_endpoint(workspace, spec.endpoint_name, traffic={"blue": 100})
poke(workspace)
auc = f"December AUC {report['challenger']['auc']:.4f}, was {report['champion']['auc']:.4f}"
print(
    f"flights-delay@champion → version {challenger.version} ({auc}); "
    f"{spec.endpoint_name}/blue → {blue.model_reference}, 100% of traffic"
)
workspace.close()
