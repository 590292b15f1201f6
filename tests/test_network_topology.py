import math

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ceas_gym.config import ConfigError, from_dict, to_dict
from ceas_gym.network.hardware import HARDWARE_PROFILES, get_hardware_profile
from ceas_gym.network.topology import (
    DEFAULT_LENGTH_KM,
    TOPOLOGIES,
    Topology,
    TopologyConfig,
    build_topology,
    generate_topology,
    grid_shape,
    load_graph,
    node_sort_key,
    validate_graph,
    write_graphml,
)


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def edge_set(graph: nx.Graph) -> set[tuple[int, int]]:
    return {(min(u, v), max(u, v)) for u, v in graph.edges}


def assert_positions_match_lengths(graph: nx.Graph) -> None:
    for u, v, data in graph.edges(data=True):
        distance = math.dist(graph.nodes[u]["pos"], graph.nodes[v]["pos"])
        assert data["length_km"] == pytest.approx(distance, rel=1e-9)


# ================================================================================================ generators
def test_registry_lists_builtin_generators():
    assert set(TOPOLOGIES.names()) >= {"ring", "grid", "complete", "star", "erdos-renyi", "waxman", "random-geometric"}


@pytest.mark.parametrize(
    ("kind", "n", "expected_links"),
    [("ring", 7, 7), ("complete", 6, 15), ("star", 9, 8), ("grid", 12, 2 * 12 - 3 - 4)],
)
def test_abstract_topologies_have_closed_form_link_counts(kind, n, expected_links):
    graph = generate_topology(kind, n, rng())
    assert graph.number_of_nodes() == n
    assert graph.number_of_edges() == expected_links
    assert all(d["length_km"] == DEFAULT_LENGTH_KM for _, _, d in graph.edges(data=True))


def test_ring_edges_and_geometry():
    graph = generate_topology("ring", 5, rng(), length_km=3.0)
    assert edge_set(graph) == {(0, 1), (1, 2), (2, 3), (3, 4), (0, 4)}
    assert_positions_match_lengths(graph)  # neighbour chords equal the link length
    with pytest.raises(ConfigError, match=r"ring.num_nodes = 2 is out of range"):
        generate_topology("ring", 2, rng())


def test_star_hub_is_node_zero():
    graph = generate_topology("star", 6, rng(), length_km=4.0)
    assert edge_set(graph) == {(0, i) for i in range(1, 6)}
    assert_positions_match_lengths(graph)


def test_complete_graph_links_every_pair():
    assert edge_set(generate_topology("complete", 5, rng())) == {(i, j) for i in range(5) for j in range(i + 1, 5)}


@pytest.mark.parametrize(
    ("n", "rows", "cols", "shape"),
    [(12, None, None, (3, 4)), (16, None, None, (4, 4)), (7, None, None, (1, 7)), (12, 2, None, (2, 6)),
     (12, None, 3, (4, 3)), (6, 2, 3, (2, 3))],
)  # fmt: skip
def test_grid_shape(n, rows, cols, shape):
    assert grid_shape(n, rows, cols) == shape


def test_grid_edges_and_geometry():
    graph = generate_topology("grid", 6, rng(), rows=2, cols=3, length_km=2.0)
    # 0 1 2 / 3 4 5
    assert edge_set(graph) == {(0, 1), (1, 2), (3, 4), (4, 5), (0, 3), (1, 4), (2, 5)}
    assert graph.nodes[5]["pos"] == (4.0, 2.0)
    assert_positions_match_lengths(graph)


def test_grid_rejects_shapes_that_do_not_hold_n_nodes():
    with pytest.raises(ConfigError, match=r"grid.rows = 5 does not divide N = 12; allowed: 1, 2, 3, 4, 6, 12"):
        generate_topology("grid", 12, rng(), rows=5)
    with pytest.raises(ConfigError, match=r"rows x cols = N = 12"):
        generate_topology("grid", 12, rng(), rows=2, cols=5)


def test_erdos_renyi_p_one_is_complete_and_result_is_connected():
    graph = generate_topology("erdos-renyi", 8, rng(), p=1.0)
    assert graph.number_of_edges() == 28
    for seed in range(5):
        assert nx.is_connected(generate_topology("erdos-renyi", 20, rng(seed), p=0.2))


def test_erdos_renyi_edge_density_matches_p():
    # Mean links over seeds ~ p N (N-1) / 2, conditioned on connectivity (slightly above); p well above threshold.
    n, p = 30, 0.4
    counts = [generate_topology("erdos-renyi", n, rng(seed), p=p).number_of_edges() for seed in range(40)]
    assert np.mean(counts) == pytest.approx(p * n * (n - 1) / 2, rel=0.05)


def test_erdos_renyi_gives_up_with_clear_error():
    with pytest.raises(ConfigError, match=r"erdos-renyi: no connected graph with N = 40 in 3 attempts \(p = 0.01\)"):
        generate_topology("erdos-renyi", 40, rng(), p=0.01, max_attempts=3)


@pytest.mark.parametrize("kind", ["waxman", "random-geometric"])
def test_geometric_generators_use_euclidean_lengths_inside_the_square(kind):
    graph = generate_topology(kind, 25, rng(3), area_km=50.0)
    assert nx.is_connected(graph)
    positions = np.array([graph.nodes[i]["pos"] for i in range(25)])
    assert positions.min() >= 0.0 and positions.max() <= 50.0
    assert_positions_match_lengths(graph)


def test_random_geometric_links_exactly_the_pairs_within_radius():
    graph = generate_topology("random-geometric", 30, rng(4), area_km=10.0, radius_km=4.0)
    positions = np.array([graph.nodes[i]["pos"] for i in range(30)])
    distance = np.linalg.norm(positions[:, None] - positions[None, :], axis=-1)
    expected = {(i, j) for i in range(30) for j in range(i + 1, 30) if distance[i, j] <= 4.0}
    assert edge_set(graph) == expected


def test_waxman_link_probability_falls_with_distance():
    # Pool pairs over seeds: short pairs are linked more often than long ones (beta e^{-d / (alpha sqrt2 A)}).
    short, long = [], []
    for seed in range(20):
        graph = generate_topology("waxman", 30, rng(seed), area_km=100.0, alpha=0.2, beta=1.0)
        pos = np.array([graph.nodes[i]["pos"] for i in range(30)])
        iu, iv = np.triu_indices(30, 1)
        d = np.linalg.norm(pos[iu] - pos[iv], axis=1)
        linked = np.array([graph.has_edge(u, v) for u, v in zip(iu, iv, strict=True)])
        short.append(linked[d < 20].mean())
        long.append(linked[d > 80].mean())
    # Expected ~ e^{-10/28.3} = 0.70 versus ~ e^{-90/28.3} = 0.04.
    assert np.mean(short) > 0.55
    assert np.mean(long) < 0.15


@pytest.mark.parametrize("kind", ["erdos-renyi", "waxman", "random-geometric"])
def test_random_generators_are_reproducible(kind):
    a = generate_topology(kind, 15, rng(11))
    b = generate_topology(kind, 15, rng(11))
    c = generate_topology(kind, 15, rng(12))
    assert nx.utils.graphs_equal(a, b)
    assert not nx.utils.graphs_equal(a, c)


def test_unknown_topology_suggests_the_closest():
    with pytest.raises(ConfigError, match=r"unknown topology 'erdos_renyi'.*Did you mean 'erdos-renyi'"):
        generate_topology("erdos_renyi", 10, rng())


def test_unknown_generator_parameter_is_an_error():
    with pytest.raises(ConfigError, match=r"unknown parameter 'lenght_km' for topology 'ring'.*'length_km'"):
        generate_topology("ring", 5, rng(), lenght_km=3.0)


@pytest.mark.parametrize(
    ("kind", "params", "message"),
    [
        ("ring", {"length_km": 0.0}, r"ring.length_km = 0.0 is out of range"),
        ("erdos-renyi", {"p": 1.5}, r"erdos-renyi.p = 1.5 is out of range; allowed: \(0, 1\]"),
        ("waxman", {"beta": 0.0}, r"waxman.beta"),
        ("waxman", {"alpha": -1.0}, r"waxman.alpha"),
        ("random-geometric", {"radius_km": -2.0}, r"random-geometric.radius_km"),
        ("random-geometric", {"max_attempts": 0}, r"random-geometric.max_attempts"),
    ],
)
def test_generator_parameter_ranges(kind, params, message):
    with pytest.raises(ConfigError, match=message):
        generate_topology(kind, 6, rng(), **params)


def test_generate_requires_a_numpy_generator():
    with pytest.raises(ConfigError, match=r"numpy.random.Generator"):
        generate_topology("waxman", 6, 42)  # type: ignore[arg-type]


@settings(max_examples=25, deadline=None)
@given(
    kind=st.sampled_from(["ring", "grid", "complete", "star", "erdos-renyi", "waxman", "random-geometric"]),
    n=st.integers(min_value=3, max_value=30),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_every_generated_graph_is_canonical(kind, n, seed):
    graph = generate_topology(kind, n, rng(seed))
    assert sorted(graph.nodes) == list(range(n))
    assert nx.is_connected(graph)
    assert all(d["length_km"] > 0 for _, _, d in graph.edges(data=True))
    assert all(len(graph.nodes[i]["pos"]) == 2 for i in graph.nodes)
    # Validating a canonical graph changes nothing.
    assert nx.utils.graphs_equal(validate_graph(graph), graph)


# ================================================================================================ validation
def small_graph() -> nx.Graph:
    graph = nx.Graph()
    graph.add_edge("b", "a", length_km=2.0)
    graph.add_edge("b", "c", length_km=3.0, eta=0.5, fidelity0=0.9)
    return graph


def test_node_sort_key_is_natural():
    labels = ["n10", "n2", "n1", "a"]
    assert sorted(labels, key=node_sort_key) == ["a", "n1", "n2", "n10"]
    assert sorted([10, 2, -1, 0], key=node_sort_key) == [-1, 0, 2, 10]
    assert sorted(["10", "9", "100"], key=node_sort_key) == ["9", "10", "100"]
    assert sorted([3, "3", 2], key=node_sort_key) == [2, 3, "3"]


def test_validate_relabels_in_natural_order_and_keeps_labels():
    graph = nx.Graph()
    graph.add_edge("n10", "n2", length_km=1.0)
    graph.add_edge("n2", "n1", length_km=2.0)
    canonical = validate_graph(graph)
    assert [canonical.nodes[i]["label"] for i in range(3)] == ["n1", "n2", "n10"]
    assert canonical[0][1]["length_km"] == 2.0 and canonical[1][2]["length_km"] == 1.0
    assert list(canonical.edges) == [(0, 1), (1, 2)]


def test_validate_orders_edges_lexicographically():
    graph = nx.Graph()
    for u, v in [(3, 1), (2, 0), (1, 0), (3, 2), (2, 1)]:
        graph.add_edge(u, v, length_km=1.0 + u + v)
    canonical = validate_graph(graph)
    assert list(canonical.edges) == [(0, 1), (0, 2), (1, 2), (1, 3), (2, 3)]
    assert Topology.from_graph(graph).edges.tolist() == [[0, 1], [0, 2], [1, 2], [1, 3], [2, 3]]


def test_validate_does_not_modify_its_input():
    graph = small_graph()
    validate_graph(graph)
    assert set(graph.nodes) == {"a", "b", "c"}
    assert "pos" not in graph.nodes["a"]


def test_validate_places_nodes_without_pos_on_a_circle():
    canonical = validate_graph(small_graph())
    radius = np.median([2.0, 3.0])
    for i in range(3):
        assert math.hypot(*canonical.nodes[i]["pos"]) == pytest.approx(radius)


def test_validate_converts_numeric_strings():
    graph = nx.Graph()
    graph.add_edge(0, 1, length_km="2.5", eta="0.5")
    canonical = validate_graph(graph)
    assert canonical[0][1]["length_km"] == 2.5 and canonical[0][1]["eta"] == 0.5


def test_disconnected_graph_names_its_components():
    graph = small_graph()
    graph.add_edge("x", "y", length_km=1.0)
    with pytest.raises(ConfigError, match=r"not connected; it has 2 components: \{'a', 'b', 'c'\}; \{'x', 'y'\}"):
        validate_graph(graph)


def test_missing_length_names_the_edge_and_attribute():
    graph = small_graph()
    graph.add_edge("c", "d")
    with pytest.raises(ConfigError, match=r"edge \('c', 'd'\): attribute 'length_km' is missing"):
        validate_graph(graph)


@pytest.mark.parametrize(
    ("attributes", "message"),
    [
        ({"length_km": 0.0}, r"attribute 'length_km' = 0.0 is out of range; allowed: \(0, inf\) km"),
        ({"length_km": -3.0}, r"'length_km' = -3.0 is out of range"),
        ({"length_km": math.inf}, r"'length_km' = inf is out of range"),
        ({"length_km": "far"}, r"'length_km' = 'far' is not a number"),
        ({"length_km": 1.0, "eta": 0.0}, r"attribute 'eta' = 0.0 is out of range; allowed: \(0, 1\]"),
        ({"length_km": 1.0, "eta": 1.2}, r"'eta' = 1.2 is out of range"),
        ({"length_km": 1.0, "fidelity0": 0.25}, r"attribute 'fidelity0' = 0.25 is out of range; allowed: \(0.25, 1\]"),
        ({"length_km": 1.0, "fidelity0": 1.1}, r"'fidelity0' = 1.1 is out of range"),
    ],
)
def test_edge_attribute_ranges(attributes, message):
    graph = nx.Graph()
    graph.add_edge(0, 1, **attributes)
    with pytest.raises(ConfigError, match=message):
        validate_graph(graph)


def test_unknown_hardware_on_a_node_suggests_the_closest():
    graph = small_graph()
    graph.nodes["a"]["hardware"] = "trapped_ion"
    with pytest.raises(
        ConfigError, match=r"node 'a': attribute 'hardware' = 'trapped_ion'.*Did you mean 'trapped-ion'"
    ):
        validate_graph(graph)


def test_known_and_user_registered_hardware_is_accepted(monkeypatch):
    monkeypatch.setitem(HARDWARE_PROFILES._entries, "my-device", get_hardware_profile("photonic"))
    graph = small_graph()
    graph.nodes["a"]["hardware"] = "nv-centre"
    graph.nodes["c"]["hardware"] = "my-device"
    topology = Topology.from_graph(graph)
    assert topology.node_hardware == ("nv-centre", None, "my-device")


@pytest.mark.parametrize(
    ("graph", "message"),
    [
        (nx.path_graph(1), r"has 1 node\(s\); allowed: at least 2 nodes"),
        (nx.DiGraph([(0, 1)]), r"directed"),
        (nx.MultiGraph([(0, 1), (0, 1)]), r"multigraph"),
        ("not a graph", r"expected a networkx.Graph"),
    ],
)
def test_structural_errors(graph, message):
    with pytest.raises(ConfigError, match=message):
        validate_graph(graph)


def test_self_loop_is_rejected():
    graph = small_graph()
    graph.add_edge("a", "a", length_km=1.0)
    with pytest.raises(ConfigError, match=r"self loops are not allowed; found edge \('a', 'a'\)"):
        validate_graph(graph)


def test_partial_or_bad_positions_are_rejected():
    graph = small_graph()
    graph.nodes["a"]["pos"] = (0.0, 1.0)
    with pytest.raises(ConfigError, match=r"node 'b': attribute 'pos' is missing while other nodes have it"):
        validate_graph(graph)
    graph.nodes["b"]["pos"] = (0.0,)
    with pytest.raises(ConfigError, match=r"node 'b': attribute 'pos'"):
        validate_graph(graph)


# ================================================================================================ files
def test_edge_list_file(tmp_path):
    path = tmp_path / "net.txt"
    path.write_text("# campus network\nalice bob 12.5\nbob carol 3 eta=0.8 fidelity0=0.95  # lab link\n\n")
    topology = Topology.from_graph(load_graph(path))
    assert topology.labels == ("alice", "bob", "carol")
    assert topology.edges.tolist() == [[0, 1], [1, 2]]
    np.testing.assert_allclose(topology.length_km, [12.5, 3.0])
    np.testing.assert_allclose(topology.eta, [np.nan, 0.8])
    np.testing.assert_allclose(topology.fidelity0, [np.nan, 0.95])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a b\n", r"line 1: expected 'u v length_km"),
        ("a b 1\nb c 2 color=red\n", r"line 2: unknown option 'color=red'"),
        ("a b 1\nb a 2\n", r"line 2: edge \('b', 'a'\) is listed twice"),
        ("a b x\n", r"line 1 length_km = 'x' is not a number"),
        ("a b 1\nb c 0\n", r"edge \('b', 'c'\) attribute 'length_km' = 0.0 is out of range"),
        ("a b 1\nc d 1\n", r"not connected"),
    ],
)
def test_edge_list_errors(tmp_path, text, message):
    path = tmp_path / "net.edges"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_graph(path)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match=r"does not exist"):
        load_graph(tmp_path / "nowhere.graphml")


def test_graphml_round_trip(tmp_path):
    graph = generate_topology("waxman", 12, rng(2))
    graph.nodes[3]["hardware"] = "trapped-ion"
    graph[0][next(iter(graph[0]))]["fidelity0"] = 0.97
    path = tmp_path / "net.graphml"
    write_graphml(graph, path)
    loaded = load_graph(path)
    original, again = Topology.from_graph(graph), Topology.from_graph(loaded)
    np.testing.assert_array_equal(again.edges, original.edges)
    np.testing.assert_allclose(again.length_km, original.length_km)
    np.testing.assert_allclose(again.positions, original.positions)
    np.testing.assert_allclose(again.fidelity0, original.fidelity0)
    assert again.node_hardware == original.node_hardware


def test_graphml_written_by_networkx_with_string_ids(tmp_path):
    graph = nx.Graph()
    graph.add_edge("n1", "n10", length_km=4.0)
    graph.add_edge("n1", "n2", length_km=5.0)
    path = tmp_path / "net.xml"
    nx.write_graphml(graph, path)
    topology = Topology.from_graph(load_graph(path))
    assert topology.labels == ("n1", "n2", "n10")
    np.testing.assert_allclose(topology.length_km, [5.0, 4.0])


def test_malformed_graphml_is_a_clear_error(tmp_path):
    path = tmp_path / "broken.graphml"
    path.write_text("<graphml><graph>")
    with pytest.raises(ConfigError, match=r"not readable as GraphML"):
        load_graph(path)


def test_load_graph_accepts_a_networkx_graph():
    assert nx.utils.graphs_equal(load_graph(small_graph()), validate_graph(small_graph()))
    with pytest.raises(ConfigError, match=r"expected a networkx.Graph or a file path"):
        load_graph(42)  # type: ignore[arg-type]


# ================================================================================================ array view
def test_topology_arrays_against_independent_computation():
    graph = generate_topology("random-geometric", 20, rng(9))
    topology = Topology.from_graph(graph)
    reference_edges = sorted(edge_set(graph))
    assert topology.edges.tolist() == [list(e) for e in reference_edges]
    assert topology.num_links == graph.number_of_edges()
    np.testing.assert_array_equal(topology.degree, [graph.degree[i] for i in range(20)])
    np.testing.assert_allclose(topology.length_km, [graph[u][v]["length_km"] for u, v in reference_edges])
    np.testing.assert_allclose(topology.positions, [graph.nodes[i]["pos"] for i in range(20)])
    assert topology.degree.sum() == 2 * topology.num_links  # handshake lemma
    assert np.isnan(topology.eta).all() and np.isnan(topology.fidelity0).all()


def test_topology_arrays_are_read_only():
    topology = Topology.from_graph(generate_topology("ring", 4, rng()))
    with pytest.raises(ValueError, match="read-only"):
        topology.length_km[0] = 1.0


def test_topology_graph_round_trip():
    graph = small_graph()
    graph.nodes["c"]["hardware"] = "photonic"
    topology = Topology.from_graph(graph)
    again = Topology.from_graph(topology.to_graph())
    np.testing.assert_array_equal(again.edges, topology.edges)
    np.testing.assert_allclose(again.length_km, topology.length_km)
    np.testing.assert_allclose(again.eta, topology.eta)
    np.testing.assert_allclose(again.positions, topology.positions)
    assert again.node_hardware == topology.node_hardware
    assert again.labels == topology.labels == ("a", "b", "c")


def test_link_index_lookup():
    topology = Topology.from_graph(generate_topology("grid", 6, rng(), rows=2, cols=3))
    u, v = topology.edges[:, 0], topology.edges[:, 1]
    np.testing.assert_array_equal(topology.link_index(v, u), np.arange(topology.num_links))
    assert topology.link_index(0, 5) == -1
    assert topology.link_index(4, 1) == topology.edges.tolist().index([1, 4])


def test_topology_rejects_inconsistent_arrays():
    edges = np.array([[0, 1], [1, 2]])
    good = {"num_nodes": 3, "edges": edges, "length_km": [1.0, 2.0], "degree": [1, 2, 1], "positions": np.zeros((3, 2))}
    Topology(**good)
    with pytest.raises(ConfigError, match=r"Topology.degree"):
        Topology(**{**good, "degree": [1, 1, 1]})
    with pytest.raises(ConfigError, match=r"Topology.edges"):
        Topology(**{**good, "edges": np.array([[1, 0], [1, 2]])})
    with pytest.raises(ConfigError, match=r"Topology.length_km: expected shape \(2,\)"):
        Topology(**{**good, "length_km": [1.0]})
    with pytest.raises(ConfigError, match=r"Topology.length_km: every link"):
        Topology(**{**good, "length_km": [1.0, -1.0]})


# ================================================================================================ configuration
def test_config_builds_reproducibly():
    config = TopologyConfig(kind="waxman", num_nodes=16, params={"area_km": 30.0})
    a, b = build_topology(config, rng(1)), build_topology(config, rng(1))
    np.testing.assert_array_equal(a.edges, b.edges)
    np.testing.assert_array_equal(a.length_km, b.length_km)
    assert a.num_nodes == 16
    assert a.positions.max() <= 30.0


def test_config_round_trips_through_dict():
    config = from_dict(TopologyConfig, {"kind": "grid", "num_nodes": 12, "params": {"rows": 2, "length_km": 5}})
    assert config.params == (("length_km", 5), ("rows", 2))
    assert from_dict(TopologyConfig, to_dict(config)) == config
    topology = build_topology(config, rng())
    assert topology.num_links == 2 * 12 - 2 - 6
    np.testing.assert_allclose(topology.length_km, 5.0)


def test_config_default_node_count():
    assert TopologyConfig().num_nodes == 8
    assert TopologyConfig(kind="star").num_nodes == 8
    assert build_topology(TopologyConfig(kind="star"), rng()).num_nodes == 8


def test_config_errors():
    with pytest.raises(ConfigError, match=r"TopologyConfig.kind = 'rnig'.*Did you mean 'ring'"):
        TopologyConfig(kind="rnig")
    with pytest.raises(ConfigError, match=r"TopologyConfig.params: unknown parameter 'radius'.*'radius_km'"):
        TopologyConfig(kind="random-geometric", num_nodes=5, params={"radius": 2.0})
    with pytest.raises(ConfigError, match=r"TopologyConfig.num_nodes = 1 is out of range"):
        TopologyConfig(kind="ring", num_nodes=1)
    with pytest.raises(ConfigError, match=r"TopologyConfig.path: required"):
        TopologyConfig(kind="file")
    with pytest.raises(ConfigError, match=r"TopologyConfig.path: only allowed with kind = 'file'"):
        TopologyConfig(kind="ring", path="x.graphml")
    with pytest.raises(ConfigError, match=r"unknown key 'nodes'.*Did you mean 'num_nodes'"):
        from_dict(TopologyConfig, {"kind": "ring", "nodes": 5})
    with pytest.raises(ConfigError, match=r"erdos-renyi.p = 2.0 is out of range"):
        build_topology(TopologyConfig(kind="erdos-renyi", num_nodes=5, params={"p": 2.0}), rng())


def test_config_from_file(tmp_path):
    path = tmp_path / "net.txt"
    path.write_text("1 2 5\n2 3 6\n3 1 7\n")
    topology = build_topology(TopologyConfig(kind="file", path=str(path)), rng())
    assert topology.num_nodes == 3 and topology.labels == ("1", "2", "3")
    np.testing.assert_allclose(topology.length_km, [5.0, 7.0, 6.0])  # (0,1), (0,2), (1,2)
    with pytest.raises(ConfigError, match=r"num_nodes = 4 but .* has 3 nodes"):
        build_topology(TopologyConfig(kind="file", path=str(path), num_nodes=4), rng())


def test_user_registered_generator_is_validated(monkeypatch):
    def broken(num_nodes, rng, *, length_km=1.0):
        graph = nx.path_graph(num_nodes)
        return graph  # forgets length_km

    monkeypatch.setitem(TOPOLOGIES._entries, "broken-line", broken)
    with pytest.raises(ConfigError, match=r"attribute 'length_km' is missing"):
        build_topology(TopologyConfig(kind="broken-line", num_nodes=3), rng())


@pytest.mark.parametrize("kind", ["ring", "grid", "complete", "star", "erdos-renyi", "waxman", "random-geometric"])
def test_building_from_a_config_equals_validating_the_generated_graph_again(kind):
    """build_topology skips the second validation of a generated graph; the result must not depend on that."""
    built = build_topology(TopologyConfig(kind=kind, num_nodes=12), rng(3))
    graph = generate_topology(kind, 12, rng(3))
    checked = Topology.from_graph(validate_graph(graph))
    assert built.num_nodes == checked.num_nodes
    assert built.labels == checked.labels and built.node_hardware == checked.node_hardware
    for name in ("edges", "length_km", "degree", "positions", "eta", "fidelity0"):
        np.testing.assert_array_equal(getattr(built, name), getattr(checked, name), err_msg=name)
