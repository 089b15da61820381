"""Batches, videos and studies on a Ray cluster (`--cluster`).

connect.py   ClusterOptions (what --cluster, --workers, --cpus-per-worker, --gpus-per-worker,
             --batch-size ask for) and the connection to Ray; the only place that imports ray
worker.py    what runs on a worker: WorkerContext (VGG19 loaded once, torch threads set),
             Task (a unit of work) and RequestTask (one job-layer Request, or a batch of them)
pool.py      Pool: long-lived worker actors, input bytes sent once, results streamed back as
             they finish, lost work retried elsewhere (the interface the doors use)
doors.py     ClusterComputer: the jobs.compute.Computer that batch and studies use on a cluster
video.py     `nst video --cluster`: a clip's frames on a pool (stylize_video_on_pool / _on_cluster),
             through chunks.py (planning), packing.py (what travels), frame_tasks.py (the
             workers' tasks), local_pool.py (FramePool, InProcessPool) and chunked.py (the driver)

Nothing here imports ray at import time: `import ray` happens in connect.import_ray, called
only when --cluster is given. The driver (the machine that runs the nst command) alone
writes files; workers receive input bytes and return encoded images with their record.
"""
