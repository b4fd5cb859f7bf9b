"""minitrax: Trax's layers, optimizers and trainer, re-built on today's JAX."""

import setuptools

setuptools.setup(
    name='minitrax',
    version='0.1.0',
    description='Train neural nets with JAX: Trax re-created, radically simple.',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    packages=setuptools.find_packages(include=['minitrax', 'minitrax.*']),
    package_data={'minitrax': ['configs/*.gin']},
    python_requires='>=3.11',
    install_requires=[
        'jax>=0.8',
        'jaxlib>=0.8',
        'numpy>=1.26',
        'msgpack>=1.0',
        'absl-py',
        'gin-config',
        'tensorflow-datasets',
        'tensorboard',
        'importlib_resources',  # tensorflow-datasets needs it to prepare data, undeclared
    ],
    entry_points={'console_scripts': ['minitrax-trainer = minitrax.trainer:run']},
    extras_require={
        'test': [
            'pytest>=8', 'pytest-xdist', 'nbclient', 'nbformat', 'ipykernel', 'yapf==0.43.0',
            'ruff==0.17.6'
        ],  # style checks of .ci/run, versions pinned
        'tfds': ['tensorflow-cpu'],
        'plot': ['matplotlib'],  # minitrax.supervised.plot_history
    },
)
