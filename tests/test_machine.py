"""What every timing records about the machine that measured it."""

from kdstudio.machine import CPU_FEATURES, cpu_description, environment


def test_environment_names_the_cpu_and_its_instruction_sets():
    env = environment(threads=3)
    assert env["threads"] == 3 and env["cpu"] and env["cores"] >= 1
    known = [name for name, _ in CPU_FEATURES]
    assert set(env["cpu_flags"]) <= set(known)
    flags = open("/proc/cpuinfo").read().split()
    assert ("AVX2" in env["cpu_flags"]) == ("avx2" in flags)


def test_cpu_description_lists_the_flags_it_has():
    assert cpu_description({"cpu": "Xeon", "cpu_flags": ["AVX2", "VNNI"]}) == "Xeon (AVX2, VNNI)"
    assert cpu_description({"cpu": "EPYC", "cpu_flags": []}) == "EPYC"
    assert cpu_description({}) == "?"  # results written before flags were recorded
