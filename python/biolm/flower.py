"""A Flower ClientApp over biolm.Site (flwr >= 1.20 Message API; docs/federated.md, "Flower").

A SuperNode runs it with its site in the node config and the federate config in the run config:

    flower-supernode --insecure --superlink 127.0.0.1:8000 --port 9094 \\
        --node-config 'site="site_a"'                      # which entry of the config's `sites`
    # pyproject.toml of the Flower app:
    #   [tool.flwr.app.components] clientapp = "biolm.flower:app"
    #   [tool.flwr.app.config] biolm-config = "examples/configs/federated_ner_demo.yaml"
    #                          biolm-overrides = "output=runs/fed-flower"   (';'-separated)

The strategies are Flower's own (flwr.serverapp.strategy.FedAvg, FedProx, FedAdam): a train
message carries the global tensors as an ArrayRecord (names = biolm's parameter names) and a
ConfigRecord with "server-round" and, from FedProx, "proximal-mu"; the reply carries the site's
tensors and a MetricRecord {"num-examples" (the FedAvg weight), "train_loss", "steps"}.
"""
from flwr.app import Array, ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from . import Site

app = ClientApp()
_sites = {}


def site_for(context: Context) -> Site:
    """The node's biolm.Site, built once per (config, site, overrides) in this process."""
    config = str(context.run_config["biolm-config"])
    overrides = [o for o in str(context.run_config.get("biolm-overrides", "")).split(";") if o]
    name = str(context.node_config["site"])
    key = (config, name, tuple(overrides))
    if key not in _sites:
        _sites[key] = Site(config, name, overrides)
    return _sites[key]


def to_arrays(site: Site) -> ArrayRecord:
    return ArrayRecord({name: Array(a) for name, a in site.get_parameters().items()})


@app.train()
def train(msg: Message, context: Context) -> Message:
    site = site_for(context)
    site.set_parameters({name: arr.numpy() for name, arr in msg.content["arrays"].items()})
    config = msg.content["config"]
    mu = config.get("proximal-mu")
    info = site.train(int(config["server-round"]), proximal_mu=None if mu is None else float(mu))
    metrics = MetricRecord({"num-examples": info["n_examples"], "train_loss": info["train_loss"],
                            "steps": info["steps"]})
    return Message(content=RecordDict({"arrays": to_arrays(site), "metrics": metrics}), reply_to=msg)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    site = site_for(context)
    site.set_parameters({name: arr.numpy() for name, arr in msg.content["arrays"].items()})
    metrics = {k: float(v) for k, v in site.evaluate().items()}
    metrics["num-examples"] = site.n_examples
    return Message(content=RecordDict({"metrics": MetricRecord(metrics)}), reply_to=msg)
