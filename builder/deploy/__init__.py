"""`tritonbuild deploy`: Kubernetes or KServe manifests for a built repository.

deploy_facts.py reads the repository once; deploy_plan.py is the pure plan (every number and refusal);
k8s_objects.py and kserve_objects.py turn it into objects, autoscaling.py the queue-time metric they scale
on, yaml_text.py writes them.
"""
