"""Multi-GPU launch (item 6): the generated accelerate / torchrun commands and accelerate config."""
from __future__ import annotations

import shlex

import pytest
import yaml

from pipelines.train.launch import LaunchSpec, accelerate_config, launch_command, write_launch_files


def test_accelerate_command_and_config(tmp_path):
    spec = LaunchSpec(launcher="accelerate", gpus_per_node=4, nodes=2, node_rank=1, master_addr="10.0.0.5",
                      master_port=29501)
    cmd = write_launch_files(tmp_path, spec)
    assert cmd == ["accelerate", "launch", "--config_file", str(tmp_path / "accelerate_config.yaml"),
                   "-m", "pipelines.train.runner", str(tmp_path)]
    cfg = yaml.safe_load((tmp_path / "accelerate_config.yaml").read_text())
    assert cfg == accelerate_config(spec)
    assert cfg["distributed_type"] == "MULTI_GPU" and cfg["num_processes"] == 8 and cfg["num_machines"] == 2
    assert cfg["machine_rank"] == 1 and cfg["main_process_ip"] == "10.0.0.5" and cfg["main_process_port"] == 29501
    sh = (tmp_path / "launch.sh").read_text().splitlines()
    assert sh[0] == "#!/bin/sh" and shlex.split(sh[-1]) == ["exec", *cmd]
    # the config keys are ones accelerate itself understands
    from accelerate.commands.config.config_args import ClusterConfig
    assert ClusterConfig.from_yaml_file(str(tmp_path / "accelerate_config.yaml")).num_processes == 8


def test_torchrun_command(tmp_path):
    spec = LaunchSpec(launcher="torchrun", gpus_per_node=8, nodes=1, resume=True)
    assert launch_command(tmp_path, spec) == [
        "torchrun", "--nnodes", "1", "--nproc_per_node", "8", "--node_rank", "0", "--master_addr", "127.0.0.1",
        "--master_port", "29500", "-m", "pipelines.train.runner", str(tmp_path), "--resume"]
    assert not (tmp_path / "accelerate_config.yaml").exists()


def test_bad_spec_refused():
    with pytest.raises(ValueError, match="node_rank 2 must be below nodes 2"):
        LaunchSpec(nodes=2, node_rank=2)
    with pytest.raises(ValueError):
        LaunchSpec(gpus_per_node=0)
