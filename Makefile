# gankit developer entry points. Everything runs inside .venv, created on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch/torchvision are installed first and explicitly, so pip does not pick another build.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
EPOCHS ?= 10

.PHONY: install test demo data lint clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH_SPEC)
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

# Install what the tests need and run them (CPU, offline, a few minutes).
test: install
	$(BIN)/python -m pytest -q

# Fashion-MNIST: the Debian package if root can install it, else gankit downloads it on first use.
data:
	@test -d /usr/share/datasets/fashion-mnist || \
	  (command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
	   (apt-get install -y -qq dataset-fashion-mnist || (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist))) || \
	  echo "Fashion-MNIST package not installed; gankit will look in GANKIT_DATA and ~/.cache/gankit, then download."

# The main job: train the MLP GAN on Fashion-MNIST, leaving a run folder in runs/.
# Re-runnable: --resume continues the run (or finds it done: EPOCHS=20 trains 10 more), and the
# samples of the demo's own run folder are drawn again over the previous ones.
demo: install data
	$(BIN)/gankit train gan --epochs $(EPOCHS) --out runs/gan-demo --resume
	$(BIN)/gankit sample runs/gan-demo --n 64 --out runs/gan-demo/generated --grid runs/gan-demo/generated.png --overwrite

clean:
	rm -rf $(VENV) runs .pytest_cache
