"""``SparkContext`` and ``RDD``: PySpark's results, partition by partition where PySpark
defines them, and keys compared as Python compares dict keys."""

import collections
import enum
import logging
import os
import threading

import pytest

from dstream import RDD, SparkConf, SparkContext
from dstream.streaming import StreamingContext

from conftest import collect, values

# --- SparkContext -------------------------------------------------------------------


def test_parallelize_defaults_to_one_partition_per_worker_thread_as_pyspark(sc):
    assert sc.defaultParallelism == 2
    assert sc.parallelize([1, 2, 3, 4]).glom().collect() == [[1, 2], [3, 4]]
    # PySpark: numSlices defaults to defaultParallelism, however little data there is.
    assert sc.parallelize([7]).getNumPartitions() == 2
    assert sc.parallelize([]).glom().collect() == [[], []]
    assert sc.parallelize(range(6), 3).glom().collect() == [[0, 1], [2, 3], [4, 5]]
    # Spark's slices: partition i holds positions i*len/n to (i+1)*len/n.
    assert sc.parallelize(range(7), 3).glom().collect() == [[0, 1], [2, 3], [4, 5, 6]]
    assert sc.parallelize([1, 2, 3]).glom().collect() == [[1], [2, 3]]
    assert sc.parallelize([1, 2], 4).glom().collect() == [[], [1], [], [2]]
    assert sc.parallelize(x for x in "abc").collect() == ["a", "b", "c"]


@pytest.mark.parametrize("master, threads", [
    ("local", 1), ("local[1]", 1), ("local[3]", 3), ("local[*]", os.cpu_count()),
    ("local[4,2]", 4),
])
def test_master_sets_the_worker_threads(master, threads):
    context = SparkContext(master, "threads")
    assert context.defaultParallelism == threads
    assert context.master == master
    assert context.appName == "threads"
    assert context.parallelize(range(10)).getNumPartitions() == threads
    context.stop()


@pytest.mark.parametrize("master", ["yarn", "spark://host:7077", "local[0]", "local[x]"])
def test_a_cluster_master_is_refused(master):
    with pytest.raises(ValueError, match="one machine"):
        SparkContext(master, "cluster")


def test_local_n_runs_n_partitions_at_once(clock):
    """Each of two partitions waits for the other: this completes only if both run at
    the same time (with one worker thread the barrier would break after its timeout)."""
    context = SparkContext("local[2]", "parallel")
    ssc = StreamingContext(context, 1, clock=clock)
    barrier = threading.Barrier(2, timeout=10)
    threads = []

    def meet(it):
        barrier.wait()
        threads.append(threading.get_ident())
        return it

    out = collect(ssc.queueStream([[1, 2, 3, 4]]).mapPartitions(meet))
    ssc.start()
    clock.advance(1)
    ssc.awaitBatch(clock.time(), timeout=20)
    ssc.stop(stopSparkContext=True)
    assert values(out) == [[1, 2, 3, 4]]
    assert len(set(threads)) == 2


def test_conf_and_get_or_create():
    conf = SparkConf().setMaster("local[3]").setAppName("conf").set("spark.x", 5)
    assert conf.get("spark.x") == "5"
    assert conf.get("spark.missing", "d") == "d"
    assert conf.contains("spark.x") and not conf.contains("spark.y")
    assert sorted(conf.getAll()) == [("spark.app.name", "conf"), ("spark.master", "local[3]"),
                                     ("spark.x", "5")]
    first = SparkContext.getOrCreate(conf)
    assert (first.master, first.appName, first.defaultParallelism) == ("local[3]", "conf", 3)
    assert first.getConf().get("spark.x") == "5"
    # The active one is returned, whatever conf says.
    assert SparkContext.getOrCreate(SparkConf().setMaster("local[1]")) is first
    first.stop()
    first.stop()  # twice is fine
    second = SparkContext.getOrCreate(SparkConf().setMaster("local[1]"))
    assert second is not first
    assert second.defaultParallelism == 1
    second.stop()


def test_a_new_context_replaces_the_active_one():
    first = SparkContext("local[2]", "first")
    second = SparkContext("local[2]", "second")
    assert SparkContext.getOrCreate() is second
    second.stop()
    first.stop()


def test_with_statement_stops_the_context():
    with SparkContext("local[2]", "with") as context:
        assert SparkContext.getOrCreate() is context
    assert context._stopped


@pytest.mark.parametrize("level, expected", [
    ("DEBUG", logging.DEBUG), ("info", logging.INFO), ("WARN", logging.WARNING),
    ("ERROR", logging.ERROR), ("FATAL", logging.CRITICAL), ("ALL", logging.NOTSET),
])
def test_set_log_level_sets_the_dstream_logger(sc, level, expected):
    logger = logging.getLogger("dstream")
    before = logger.level
    try:
        sc.setLogLevel(level)
        assert logger.level == expected
    finally:
        logger.setLevel(before)


def test_set_log_level_refuses_an_unknown_level(sc):
    with pytest.raises(ValueError, match="unknown log level 'LOUD'"):
        sc.setLogLevel("LOUD")


def test_range_empty_rdd_and_union(sc):
    assert sc.range(5).collect() == [0, 1, 2, 3, 4]
    assert sc.range(2, 8, 3).collect() == [2, 5]
    assert sc.emptyRDD().collect() == []
    assert sc.union([sc.parallelize([1]), sc.parallelize([2]), sc.parallelize([3])]) \
        .collect() == [1, 2, 3]


# --- actions ------------------------------------------------------------------------


def test_collect_take_first_count_is_empty(sc):
    rdd = sc.parallelize([5, 3, 8, 1], 2)
    assert rdd.collect() == [5, 3, 8, 1]
    assert rdd.take(3) == [5, 3, 8]
    assert rdd.take(0) == []
    assert rdd.take(10) == [5, 3, 8, 1]
    assert rdd.first() == 5
    assert rdd.count() == 4
    assert rdd.isEmpty() is False
    empty = sc.parallelize([], 3)
    assert empty.isEmpty() is True
    assert empty.count() == 0
    assert empty.take(2) == []
    with pytest.raises(ValueError, match="RDD is empty"):
        empty.first()


def test_take_stops_at_the_partitions_it_needs(sc):
    rdd = sc.parallelize([1, 2, 3, 4, 5, 6], 3).filter(lambda x: x > 4)
    assert rdd.take(1) == [5]
    assert rdd.first() == 5


def test_foreach_calls_f_for_every_element(sc):
    seen = []
    lock = threading.Lock()

    def record(x):
        with lock:
            seen.append(x)

    assert sc.parallelize(range(10), 3).foreach(record) is None
    assert sorted(seen) == list(range(10))


def test_foreach_partition_calls_f_once_per_partition(sc):
    parts = []
    lock = threading.Lock()

    def record(it):
        items = list(it)
        with lock:
            parts.append(items)

    sc.parallelize([1, 2, 3, 4, 5, 6], 3).foreachPartition(record)
    assert sorted(parts) == [[1, 2], [3, 4], [5, 6]]


def test_reduce_fold_sum_max_min_mean_top(sc):
    rdd = sc.parallelize([4, 1, 7, 3], 2)
    assert rdd.reduce(lambda a, b: a + b) == 15
    assert rdd.fold(0, lambda a, b: a + b) == 15
    assert rdd.sum() == 15
    assert rdd.max() == 7
    assert rdd.min() == 1
    assert rdd.mean() == 3.75
    assert rdd.top(2) == [7, 4]
    assert rdd.takeOrdered(2) == [1, 3]
    assert rdd.countByValue() == {4: 1, 1: 1, 7: 1, 3: 1}
    with pytest.raises(ValueError, match="empty"):
        sc.parallelize([]).reduce(lambda a, b: a + b)


# --- transformations ----------------------------------------------------------------


def test_map_flat_map_filter_are_lazy_and_pipelined(sc):
    calls = []
    rdd = sc.parallelize(["a b", "c", "d e f"], 2)
    words = rdd.flatMap(lambda line: line.split(" ")) \
        .map(lambda w: calls.append(w) or w.upper()) \
        .filter(lambda w: w != "C")
    assert calls == []  # nothing runs before an action
    assert words.collect() == ["A", "B", "D", "E", "F"]
    assert sorted(calls) == ["a", "b", "c", "d", "e", "f"]
    # The parent is untouched by its children.
    assert rdd.map(len).collect() == [3, 1, 5]


def test_map_partitions_glom_and_with_index(sc):
    rdd = sc.parallelize([1, 2, 3, 4], 2)
    assert rdd.mapPartitions(lambda it: [sum(it)]).collect() == [3, 7]
    assert rdd.mapPartitionsWithIndex(lambda i, it: [(i, list(it))]).collect() == \
        [(0, [1, 2]), (1, [3, 4])]
    assert rdd.glom().collect() == [[1, 2], [3, 4]]


def test_union_keeps_each_side_in_order(sc):
    left = sc.parallelize([1, 2, 3], 2)
    right = sc.parallelize(["x"], 1)
    union = left.union(right)
    assert union.collect() == [1, 2, 3, "x"]
    assert union.getNumPartitions() == 3
    assert (left + right).collect() == [1, 2, 3, "x"]
    assert left.union(left).collect() == [1, 2, 3, 1, 2, 3]


def test_get_num_partitions_repartition_and_coalesce(sc):
    rdd = sc.parallelize(range(10), 5)
    assert rdd.getNumPartitions() == 5
    assert rdd.map(lambda x: x).getNumPartitions() == 5
    assert rdd.repartition(3).getNumPartitions() == 3
    assert sorted(rdd.repartition(3).collect()) == list(range(10))
    assert rdd.coalesce(1).glom().collect() == [list(range(10))]


def test_sort_by_and_sort_by_key(sc):
    rdd = sc.parallelize([("b", 2), ("c", 1), ("a", 3), ("B", 0)], 2)
    assert rdd.sortByKey().collect() == [("B", 0), ("a", 3), ("b", 2), ("c", 1)]
    assert rdd.sortByKey(False).collect() == [("c", 1), ("b", 2), ("a", 3), ("B", 0)]
    assert rdd.sortByKey(keyfunc=str.lower).collect() == \
        [("a", 3), ("b", 2), ("B", 0), ("c", 1)]
    assert rdd.sortBy(lambda kv: kv[1]).collect() == [("B", 0), ("c", 1), ("b", 2), ("a", 3)]
    assert rdd.sortBy(lambda kv: kv[1], ascending=False).collect() == \
        [("a", 3), ("b", 2), ("c", 1), ("B", 0)]
    one = rdd.sortBy(lambda kv: kv[1], numPartitions=1)
    assert one.getNumPartitions() == 1
    assert one.glom().collect() == [[("B", 0), ("c", 1), ("b", 2), ("a", 3)]]


def test_sort_by_sorts_across_partitions_in_order(sc):
    rdd = sc.parallelize([9, 2, 7, 4, 5, 0, 3, 8, 1, 6], 3).sortBy(lambda x: x)
    parts = rdd.glom().collect()
    assert [x for part in parts for x in part] == list(range(10))
    assert rdd.collect() == list(range(10))


# --- by key -------------------------------------------------------------------------


def test_reduce_by_key(sc):
    pairs = sc.parallelize([("a", 1), ("b", 2), ("a", 3), ("c", 4), ("b", 5)], 3)
    reduced = pairs.reduceByKey(lambda x, y: x + y)
    assert sorted(reduced.collect()) == [("a", 4), ("b", 7), ("c", 4)]
    # PySpark: as many partitions as the parent, unless told.
    assert reduced.getNumPartitions() == 3
    assert pairs.reduceByKey(lambda x, y: x + y, 1).getNumPartitions() == 1
    assert sorted(pairs.reduceByKey(lambda x, y: x * y, 1).collect()) == \
        [("a", 3), ("b", 10), ("c", 4)]


def test_reduce_by_key_on_lists_as_pairs(sc):
    # PySpark unpacks any 2-element record as (key, value).
    assert sorted(sc.parallelize([["a", 1], ["a", 2]]).reduceByKey(lambda x, y: x + y)
                  .collect()) == [("a", 3)]


def test_group_by_key_and_combine_by_key(sc):
    pairs = sc.parallelize([("a", 1), ("b", 2), ("a", 3), ("a", 5)], 2)
    grouped = sorted((k, sorted(v)) for k, v in pairs.groupByKey().collect())
    assert grouped == [("a", [1, 3, 5]), ("b", [2])]
    combined = pairs.combineByKey(lambda v: [v], lambda c, v: c + [v], lambda a, b: a + b)
    assert sorted((k, sorted(c)) for k, c in combined.collect()) == [("a", [1, 3, 5]), ("b", [2])]
    assert sorted(pairs.mapValues(lambda v: v * 10).collect()) == \
        [("a", 10), ("a", 30), ("a", 50), ("b", 20)]
    assert sorted(pairs.flatMapValues(lambda v: range(v, v + 2)).collect())[:3] == \
        [("a", 1), ("a", 2), ("a", 3)]
    assert sorted(pairs.keys().collect()) == ["a", "a", "a", "b"]
    assert pairs.countByKey() == {"a": 3, "b": 1}
    assert sorted(pairs.foldByKey(0, lambda a, b: a + b).collect()) == [("a", 9), ("b", 2)]


def test_join_and_outer_joins(sc):
    left = sc.parallelize([("a", 1), ("b", 2), ("a", 3)], 2)
    right = sc.parallelize([("a", "x"), ("c", "y"), ("a", "z")], 2)
    assert sorted(left.join(right).collect()) == \
        [("a", (1, "x")), ("a", (1, "z")), ("a", (3, "x")), ("a", (3, "z"))]
    assert sorted(left.leftOuterJoin(right).collect()) == \
        [("a", (1, "x")), ("a", (1, "z")), ("a", (3, "x")), ("a", (3, "z")), ("b", (2, None))]
    assert sorted(left.rightOuterJoin(right).collect()) == \
        [("a", (1, "x")), ("a", (1, "z")), ("a", (3, "x")), ("a", (3, "z")), ("c", (None, "y"))]
    assert sorted(left.fullOuterJoin(right).collect()) == \
        [("a", (1, "x")), ("a", (1, "z")), ("a", (3, "x")), ("a", (3, "z")),
         ("b", (2, None)), ("c", (None, "y"))]
    # PySpark: a join has the partitions of both sides, unless told.
    assert left.join(right).getNumPartitions() == 4
    assert left.join(right, 3).getNumPartitions() == 3


def test_cogroup(sc):
    left = sc.parallelize([("a", 1), ("b", 2), ("a", 3)], 2)
    right = sc.parallelize([("a", "x"), ("c", "y")], 1)
    grouped = sorted((k, (sorted(v), sorted(w))) for k, (v, w) in left.cogroup(right).collect())
    assert grouped == [("a", ([1, 3], ["x"])), ("b", ([2], [])), ("c", ([], ["y"]))]


def test_partition_by_places_keys_with_partition_func(sc):
    pairs = sc.parallelize([(k, str(k)) for k in range(6)], 2)
    assert pairs.partitionBy(2, lambda k: k).glom().collect() == \
        [[(0, "0"), (2, "2"), (4, "4")], [(1, "1"), (3, "3"), (5, "5")]]
    assert pairs.partitionBy(3, lambda k: k // 2).glom().collect() == \
        [[(0, "0"), (1, "1")], [(2, "2"), (3, "3")], [(4, "4"), (5, "5")]]
    # Any int-like partition number will do, as in PySpark.
    assert pairs.partitionBy(2, lambda k: k > 2).glom().collect() == \
        [[(0, "0"), (1, "1"), (2, "2")], [(3, "3"), (4, "4"), (5, "5")]]
    # The default (a hash of the key) keeps each key in one partition.
    parts = pairs.union(pairs).partitionBy(4).glom().collect()
    assert len(parts) == 4
    for part in parts:
        for key, _ in part:
            assert all(key not in dict(other) for other in parts if other is not part)


def test_distinct(sc):
    assert sorted(sc.parallelize([1, 2, 1, 3, 2], 3).distinct().collect()) == [1, 2, 3]


def test_cache_computes_once(sc):
    calls = []
    rdd = sc.parallelize([1, 2, 3], 1).map(lambda x: calls.append(x) or x * 2).cache()
    assert rdd.collect() == [2, 4, 6]
    assert rdd.map(lambda x: x + 1).collect() == [3, 5, 7]
    assert rdd.count() == 3
    assert calls == [1, 2, 3]


def test_save_as_text_file_writes_parts_and_success(sc, tmp_path):
    target = tmp_path / "out"
    sc.parallelize([1, "two", (3, "x")], 2).saveAsTextFile(str(target))
    assert sorted(os.listdir(target)) == ["_SUCCESS", "part-00000", "part-00001"]
    assert (target / "part-00000").read_text() == "1\n"
    assert (target / "part-00001").read_text() == "two\n(3, 'x')\n"
    assert (target / "_SUCCESS").read_text() == ""
    with pytest.raises(OSError, match="already exists"):
        sc.parallelize([1]).saveAsTextFile(str(target))


def test_an_rdd_of_the_stream_is_an_rdd(ssc, run):
    kinds = []
    ssc.queueStream([[1]]).foreachRDD(lambda rdd: kinds.append(type(rdd)))
    run(1)
    assert kinds == [RDD]


def test_rdd_operations_on_the_rdds_a_stream_hands_out(ssc, sc, run):
    results = []
    lookup = sc.parallelize([("a", "A"), ("c", "C")])

    def inspect(rdd):
        parts = []
        rdd.foreachPartition(lambda it: parts.append(sorted(it)))
        seen = []
        rdd.foreach(seen.append)
        pairs = rdd.map(lambda w: (w, 1))
        results.append({
            "collect": rdd.collect(),
            "take": rdd.take(2),
            "first": rdd.first() if not rdd.isEmpty() else None,
            "count": rdd.count(),
            "isEmpty": rdd.isEmpty(),
            "partitions": rdd.getNumPartitions(),
            "foreachPartition": sorted(parts),
            "foreach": sorted(seen),
            "flatMap": rdd.flatMap(lambda w: [w, w.upper()]).collect(),
            "filter": rdd.filter(lambda w: w != "b").collect(),
            "reduceByKey": sorted(pairs.reduceByKey(lambda x, y: x + y).collect()),
            "join": sorted(pairs.join(lookup).collect()),
            "union": rdd.union(sc.parallelize(["z"])).collect(),
            "sortBy": rdd.sortBy(lambda w: w, ascending=False).collect(),
            "sortByKey": pairs.sortByKey().keys().collect(),
        })

    ssc.queueStream([["c", "a", "b", "a"], []]).foreachRDD(inspect)
    run(2)
    assert results == [{
        "collect": ["c", "a", "b", "a"], "take": ["c", "a"], "first": "c", "count": 4,
        "isEmpty": False, "partitions": 2, "foreachPartition": [["a", "b"], ["a", "c"]],
        "foreach": ["a", "a", "b", "c"], "flatMap": ["c", "C", "a", "A", "b", "B", "a", "A"],
        "filter": ["c", "a", "a"], "reduceByKey": [("a", 2), ("b", 1), ("c", 1)],
        "join": [("a", (1, "A")), ("a", (1, "A")), ("c", (1, "C"))],
        "union": ["c", "a", "b", "a", "z"], "sortBy": ["c", "b", "a", "a"],
        "sortByKey": ["a", "a", "b", "c"],
    }, {
        "collect": [], "take": [], "first": None, "count": 0, "isEmpty": True,
        "partitions": 2, "foreachPartition": [[], []], "foreach": [], "flatMap": [],
        "filter": [], "reduceByKey": [], "join": [], "union": ["z"], "sortBy": [],
        "sortByKey": [],
    }]


# --- keys: Python's dict-key equality ------------------------------------------------


class Point:
    """A key type of the user's own: equal points are the same key."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __eq__(self, other):
        return isinstance(other, Point) and (self.x, self.y) == (other.x, other.y)

    def __hash__(self):
        return hash((self.x, self.y))

    def __repr__(self):
        return "Point(%d, %d)" % (self.x, self.y)


class Colliding:
    """Every instance hashes alike: only ``==`` tells them apart."""

    def __init__(self, name):
        self.name = name

    def __eq__(self, other):
        return isinstance(other, Colliding) and self.name == other.name

    def __hash__(self):
        return 0


Pair = collections.namedtuple("Pair", "x y")


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Color(str, enum.Enum):
    RED = "red"


def reduce_spread(sc, pairs):
    """reduceByKey with each record in its own partition, so that equal keys meet only
    in the shuffle, not in a map-side dict."""
    return sc.parallelize(pairs, len(pairs)).reduceByKey(lambda a, b: a + b, 3).collect()


def test_one_float_and_true_are_the_same_key(sc):
    result = reduce_spread(sc, [(1, 1), (1.0, 10), (True, 100), (2.5, 1000), (2, 5)])
    assert len(result) == 3
    assert dict(result) == {1: 111, 2.5: 1000, 2: 5}
    assert sorted(reduce_spread(sc, [((1, "a"), 1), ((1.0, "a"), 2), ((True, "a"), 4)])) == \
        [((1, "a"), 7)]
    assert sorted(reduce_spread(sc, [(0, 1), (False, 2), (0.0, 4), (-0.0, 8)])) == [(0, 15)]


def test_tuple_frozenset_none_and_bytes_keys(sc):
    pairs = [((1, "a"), 1), (frozenset({1, 2}), 2), ((1, "a"), 3), (frozenset({2, 1}), 4),
             (None, 5), (b"k", 6), (None, 7), (b"k", 8), ((1, ("n", 2)), 9), ((1, ("n", 2)), 10)]
    result = dict(reduce_spread(sc, pairs))
    assert result == {(1, "a"): 4, frozenset({1, 2}): 6, None: 12, b"k": 14, (1, ("n", 2)): 19}


def test_user_defined_keys_compare_with_eq(sc):
    result = reduce_spread(sc, [(Point(1, 2), 1), (Point(1, 2), 2), (Point(2, 1), 4),
                                (Colliding("a"), 8), (Colliding("b"), 16), (Colliding("a"), 32)])
    assert sorted((repr(k) if isinstance(k, Point) else k.name, v) for k, v in result) == \
        [("Point(1, 2)", 3), ("Point(2, 1)", 4), ("a", 40), ("b", 16)]


def test_subclass_keys_equal_to_plain_ones_are_the_same_key(sc):
    # namedtuples, IntEnum and str enums equal plain tuples, ints and strs in a dict.
    result = reduce_spread(sc, [(Pair(1, "a"), 1), ((1, "a"), 2), (Level.HIGH, 4), (2, 8),
                                (Color.RED, 16), ("red", 32)])
    assert dict(result) == {(1, "a"): 3, 2: 12, "red": 48}


def test_unhashable_keys_are_refused(sc):
    with pytest.raises(TypeError, match="hashable"):
        sc.parallelize([([1], 1)]).reduceByKey(lambda a, b: a + b).collect()


def test_join_on_mixed_number_keys(sc):
    left = sc.parallelize([(1, "int"), (Point(0, 0), "p")], 2)
    right = sc.parallelize([(1.0, "float"), (Point(0, 0), "q")], 2)
    assert sorted(left.join(right).collect(), key=repr) == \
        [(1, ("int", "float")), (Point(0, 0), ("p", "q"))]
