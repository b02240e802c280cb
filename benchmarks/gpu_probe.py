"""Quick GPU probe: CUDA-graphed vs eager step (equality and speed), evaluation cost."""
import os, time, torch
from lth.data import load_splits
from lth.engine import NetworkStack
from lth.models import build_model
from lth.training import TrainConfig, train, evaluate, TrainStep, make_optimizer

dev = torch.device("cuda")
print(torch.__version__, torch.cuda.get_device_name())
d = load_splits("mnist").to(dev)
def stack(M, model="lenet300", shape=(1, 28, 28)):
    return NetworkStack.build(lambda s: build_model(model, shape, 10, seed=s), list(range(M)), dev)

# equality: graphed vs eager
res = {}
for graphs in ("0", "1"):
    os.environ["LTH_CUDA_GRAPHS"] = graphs
    st = stack(3)
    h, _ = train(st, d, TrainConfig(iterations=300, eval_every=100), data_seeds=[0, 1, 2])
    res[graphs] = (st.state()["params"], h.series("val/loss"))
diff = max((res["0"][0][k] - res["1"][0][k]).abs().max().item() for k in res["0"][0])
print("graph vs eager max |dw| after 300 it:", diff, "val loss", res["0"][1][:, -1].tolist(), res["1"][1][:, -1].tolist())

def rate(M, graphs, iters=3000, model="lenet300", data=d, bs=60, opt="adam"):
    os.environ["LTH_CUDA_GRAPHS"] = graphs
    st = stack(M, model, data.input_shape)
    cfg = TrainConfig(iterations=iters, batch_size=bs, optimizer=opt, lr=1e-3, eval_every=10**9)
    o = make_optimizer(list(st.params.values()), cfg, graphs == "1")
    step = TrainStep(st, data, o, list(range(M)), bs, graphs == "1")
    for i in range(10): step(i, 1e-3)
    torch.cuda.synchronize(); t = time.time()
    for i in range(10, iters): step(i, 1e-3)
    torch.cuda.synchronize(); dt = time.time() - t
    return (iters - 10) / dt

for M in (5, 25, 100):
    for g in ("1",):
        r = rate(M, g, 3000)
        print(f"lenet M={M:3d} graphs={g}: {r:8.0f} steps/s  {r*M:9.0f} net-it/s")
st = stack(25)
for _ in range(3): evaluate(st, d.val)
torch.cuda.synchronize(); t = time.time()
for _ in range(20): evaluate(st, d.val); evaluate(st, d.test)
torch.cuda.synchronize(); print(f"eval val+test M=25: {(time.time()-t)/20*1000:.1f} ms")
cifar = load_splits("synthetic", synthetic_shape=(3, 32, 32), synthetic_sizes=(5000, 500, 500)).to(dev)
for model, M, bs in (("conv2", 5, 60), ("resnet20", 5, 128)):
    for g in ("1",):
        opt = "adam" if model == "conv2" else "sgd"
        r = rate(M, g, 300, model, cifar, bs, opt)
        print(f"{model} M={M} graphs={g}: {r:8.0f} steps/s {r*M:9.0f} net-it/s")
print("peak mem GiB", torch.cuda.max_memory_allocated() / 2**30)
