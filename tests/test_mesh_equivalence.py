"""The training chunk on 4 devices equals the same 4-way split computed on one device
(``tests/mesh_checks.py equivalence``, in a process with 4 forced host devices): the
``features`` config and a tiny pixel config, state and metrics after 8 chunks with
learning, and the learners identical on every device. A file of its own so that the test
workers can run it beside ``test_sharding.py``."""


def test_four_devices_equal_the_same_split_on_one_device(run_mesh_checks, recorded_demos, tmp_path):
    run_mesh_checks("equivalence", recorded_demos, tmp_path)
