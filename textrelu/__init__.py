"""textrelu: deep sparse rectifier networks for review sentiment and ratings.

Glorot, Bordes & Bengio (2011), "Deep Sparse Rectifier Neural Networks", as a practical tool:
binary bag-of-words vectors, stacked denoising autoencoders with rectifier units, fine-tuning
for polarity or star ratings, and streaming batch scoring.
"""

__version__ = "0.1.0"
