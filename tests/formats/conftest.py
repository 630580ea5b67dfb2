# The labelled library of the snapshot tests (90 Fashion-MNIST images, two sources, confidences and tags).
from tests.snapshots.conftest import labelled, labelled_template  # noqa: F401
