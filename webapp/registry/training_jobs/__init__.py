"""The training-job half of the registry: launching, running and recording C3PO jobs.

One job per module, and one direction of imports (no module imports one that imports it back):

    catalog.py      the stages, algorithms and domains an admin may launch; the job page's charts
    evaluation.py   the site's evaluation protocol (problems per level, seed, answer cap) and its
                    fingerprint; scoring itself is training.scoring
    fields.py       the launch form's hyper-parameters: defaults from training.c3po.config, checks
    plan.py         the job's memory plan (training.plan) and the refusal of one that cannot fit
    pool.py         the problem pool as trainer records, split by training.problems' held-out rule
    launch_form.py  the Django form built from the above
    bridge.py       the one module that runs the trainer and the evaluation engines (torch side)
    heartbeat.py    a running job's heartbeat thread and the "is its runner alive" test
    ranks.py        a process group's rank heartbeats as the job page's rows (alive/stale/exited)
    recorder.py     JobRecorder: the training.observer.TrainingObserver a job's run reports to
    services.py     create, cancel, resume, recover and run a job (the Celery task's service)

Only bridge.py imports the torch side of `training` (the pipeline, the launcher, the engines), and
only inside the functions that run in the Celery worker; the other modules use training's pure
modules (training.c3po.config, training.plan, training.problems, training.scoring,
training.observer), so the web processes never load torch (tests/webapp/registry/
test_training_jobs_boundary.py). The models stay in webapp.registry.models (TrainingJob,
TrainingMetric, TrainingSample), the reads in webapp.registry.selectors, the Celery tasks in
webapp.registry.tasks and the pages in webapp.registry.views.
"""
