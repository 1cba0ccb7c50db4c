"""The ServerApp of parity::flower_deployment: Flower's own FedAvg over the SuperNodes' biolm
ClientApps, every site every round, from the initial model every biolm site builds (a "server"
biolm.Site); writes the final global tensors to run_config["result"] (.npz)."""
import numpy as np
from flwr.app import Array, ArrayRecord, Context
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg

import biolm

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    overrides = [o for o in str(context.run_config["biolm-overrides"]).split(";") if o]
    server = biolm.Site(str(context.run_config["biolm-config"]), "server", overrides)
    arrays = ArrayRecord({name: Array(a) for name, a in server.get_parameters().items()})
    strategy = FedAvg(fraction_train=1.0, min_train_nodes=3, min_available_nodes=3, fraction_evaluate=0.0)
    result = strategy.start(grid=grid, initial_arrays=arrays, num_rounds=int(context.run_config["num-rounds"]))
    np.savez(str(context.run_config["result"]), **{k: v.numpy() for k, v in result.arrays.items()})
