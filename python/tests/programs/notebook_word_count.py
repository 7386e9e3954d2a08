# The classroom notebook's word count (seed 003, "Streaming Client"), as written, with
# only the imports changed from pyspark to dstream.
from dstream import SparkContext
from dstream.streaming import StreamingContext

# Create a local StreamingContext with as many working processors as possible and a batch interval of 10 seconds
batch_interval = 10

# local[*]: run Spark locally with as many working processors as logical cores on your machine.
sc = SparkContext(master="local[*]", appName = "WordCountApp")

# a batch interval of 10 seconds
ssc = StreamingContext(sc, batch_interval)

# Create a DStream connecting to hostname:port
host = "localhost"
port = 9999
lines = ssc.socketTextStream(host, int(port))

# Split each line into words
words = lines.flatMap(lambda line: line.split(" ")) # Transform DStream input to DStream Object

# Count each word in each batch
pairs = words.map(lambda word: (word, 1))
wordCounts = pairs.reduceByKey(lambda x, y: x + y)

# Print the counting result
wordCounts.pprint()

ssc.start()
try:
    ssc.awaitTermination(timeout=60)
except KeyboardInterrupt:
    ssc.stop()
    sc.stop()

ssc.stop()
sc.stop()
