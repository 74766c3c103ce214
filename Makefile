# Ring Tutor: the two commands a newcomer needs are `make run` and `make test`.
.PHONY: run test test-fast setup lint format lock bench ring-tiny

run:            ## set up what is missing, then run the whole site on its embedded defaults
	scripts/run.sh

test: setup     ## lint (ruff format --check + ruff check), type-check (mypy) and the whole pytest suite
	.venv/bin/ruff format --check .
	.venv/bin/ruff check .
	.venv/bin/mypy
	.venv/bin/python -m pytest

test-fast:      ## lint, type-check and the tests that start no engine, site, worker or browser (not CI's full run)
	.venv/bin/ruff format --check .
	.venv/bin/ruff check .
	.venv/bin/mypy
	.venv/bin/python -m pytest -q -m "not integration and not slow"

setup:          ## create/update .venv (from the lock), node_modules and collected static files
	scripts/setup.sh

format:
	.venv/bin/ruff format . && .venv/bin/ruff check --fix .

lock:           ## regenerate requirements/lock-cpu.txt from the current .venv
	.venv/bin/pip freeze --exclude-editable | grep -v -E '^(torchvision|torchaudio|torchcodec)==' > requirements/lock-cpu.txt

RING_TINY_V2_DEVICE ?= cuda

ring-tiny:      ## reproduce ring-tiny from random weights: six SFT stages on CPU, then v2 (natural phrasings) on a GPU, then ship
	.venv/bin/python -m training.scripts.train_ring_tiny --output-dir runs/ring-tiny-sft --no-ship
	.venv/bin/python -m training.scripts.train_ring_tiny --init-checkpoint runs/ring-tiny-sft/epoch-32 \
	  --output-dir runs/ring-tiny-stage2 --epochs 12 --learning-rate 1.5e-3 --tokens-per-batch 4096 \
	  --level-weights 0.4,0.3,0.2,0.1 --early-epochs 0 --seed 1 --no-ship
	.venv/bin/python -m training.scripts.train_ring_tiny --init-checkpoint runs/ring-tiny-stage2/epoch-12 \
	  --output-dir runs/ring-tiny-stage3 --epochs 8 --learning-rate 1e-3 --tokens-per-batch 4096 \
	  --level-weights 0.4,0.3,0.2,0.1 --early-epochs 0 --seed 2 --no-ship
	.venv/bin/python -m training.scripts.train_ring_tiny --init-checkpoint runs/ring-tiny-stage3/epoch-8 \
	  --output-dir runs/ring-tiny-stage4 --epochs 10 --learning-rate 1e-3 --tokens-per-batch 4096 \
	  --level-weights 0.4,0.3,0.2,0.1 --early-epochs 0 --seed 3 \
	  --topic-weights multiple_choice=5,fractions=2 --no-ship
	.venv/bin/python -m training.scripts.train_ring_tiny --init-checkpoint runs/ring-tiny-stage4/epoch-10 \
	  --output-dir runs/ring-tiny-stage5 --epochs 6 --learning-rate 1e-3 --tokens-per-batch 4096 \
	  --level-weights 0.4,0.3,0.2,0.1 --early-epochs 0 --seed 4 --topic-weights multiple_choice=3 --no-ship
	.venv/bin/python -m training.scripts.train_ring_tiny --init-checkpoint runs/ring-tiny-stage5/epoch-6 \
	  --output-dir runs/ring-tiny-stage6 --epochs 6 --learning-rate 5e-4 --tokens-per-batch 4096 \
	  --level-weights 0.4,0.3,0.2,0.1 --early-epochs 0 --seed 5 --topic-weights multiple_choice=3
	# v2: natural phrasings (docs/training-data.md), on a GPU: 3,883 steps of 131,072-token batches
	# took 335 s on one H200; on two CPU cores the same 452 M tokens would take days.
	.venv/bin/python -m training.scripts.train_ring_tiny_v2 --init-checkpoint checkpoints/ring-tiny \
	  --device $(RING_TINY_V2_DEVICE) --max-steps 3883 --output-dir runs/ring-tiny-v2 \
	  --ship-to checkpoints/ring-tiny
