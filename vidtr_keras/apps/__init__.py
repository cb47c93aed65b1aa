"""What one does with a trained model: multi-view prediction (`predict`), evaluation, timelines over long
videos (`timeline`), backbone features (`features`), attention maps and rollout (`explain`), and export for
serving (`export`).

Import the submodule you need (`from vidtr_keras.apps.timeline import predict_timeline`); this package
re-exports nothing, so importing one application never loads the others.
"""
