"""Readers of file layouts, each returning a validated ``CityDataset``.

One module per layout: ``city_folder`` (users' own data), ``tgcn_csv``, ``metr_hdf5``,
``pems_npz``, ``largest``; ``common`` holds what they share.
"""
