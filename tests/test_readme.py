"""The README: its example runs, and CI runs exactly its test command."""

import pathlib
import re
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def test_readme_opens_with_the_two_commands():
    blocks = re.findall(r"```bash\n(.*?)```", README, flags=re.S)
    commands = blocks[0].strip().splitlines()
    assert len(commands) == 2
    assert commands[0].endswith("benchmarks/lstm.py")
    assert "pytest" in commands[1]


def test_ci_runs_the_readme_test_command():
    readme_command = re.findall(r"```bash\n(.*?)```", README, flags=re.S)[0].strip().splitlines()[1]
    ci_lines = [line for line in (REPO / ".ci" / "run").read_text().splitlines()
                if line and not line.startswith(("#", "set ", "cd "))]
    assert ci_lines == [readme_command]


def test_readme_example_trains_and_logs_the_learning_rate():
    example = re.findall(r"```python\n(.*?)```", README, flags=re.S)[0]
    script = example + """
params = {"w": jnp.zeros((3, 1)), "b": jnp.zeros(1)}
opt_state = opt.init(params)
x = jax.random.normal(jax.random.key(0), (64, 3)); y = x @ jnp.array([[1.0], [-2.0], [0.5]])
losses, lrs = [], []
for step in range(1000):
    params, opt_state, loss, hp = train_step(params, opt_state, x, y)
    losses.append(float(loss)); lrs.append(float(hp["learning_rate"]))
assert losses[-1] < 0.1 * losses[0], losses[::50]
assert lrs[0] == 0.0 and abs(lrs[100] - 3e-3) < 1e-9 and lrs[999] < lrs[500] < lrs[100]
assert train_step._cache_size() == 1
print("OK")
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=300, cwd=REPO)
    assert out.returncode == 0 and "OK" in out.stdout, out.stderr[-3000:]
