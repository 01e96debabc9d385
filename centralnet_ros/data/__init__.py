"""
One reader per dataset, in the dataset's own file format.

Every reader module registers itself in :data:`centralnet_ros.data.registry.DATASETS`
and provides ``summarize(root) -> DatasetSummary`` for ``centralnet data check``.
"""
